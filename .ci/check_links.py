#!/usr/bin/env python3
"""Check the relative links of Markdown files: every linked file exists inside the repository,
and every `#anchor` names a heading of its target (GitHub's and mdBook's anchors, which agree
for the headings used here). Links to web pages are not fetched (CI has no network).

    python3 .ci/check_links.py README.md docs/src/*.md

Exits 1, listing each broken link with its file and line, if any link is broken.
"""

import os
import re
import sys

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title"), ![alt](target); the text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def strip_code(line):
    return INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)


def lines_outside_fences(path):
    """(line number, text) of every line outside fenced code blocks."""
    fence = None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = FENCE.match(line)
            if m:
                if fence is None:
                    fence = m.group(1)
                elif line.strip().startswith(fence):
                    fence = None
                continue
            if fence is None:
                yield n, line.rstrip("\n")


def heading_text(raw):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links: their text
    text = text.replace("`", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return text


def slug(text):
    """GitHub's (and mdBook's) heading id: lowercase, letters, digits, `-` and `_` kept,
    whitespace to `-`, everything else dropped."""
    out = []
    for ch in text.strip().lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


_anchors = {}


def anchors(path):
    if path not in _anchors:
        seen = {}
        found = set()
        for _, line in lines_outside_fences(path):
            m = HEADING.match(line)
            if not m:
                continue
            base = slug(heading_text(m.group(2)))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        _anchors[path] = found
    return _anchors[path]


def links(path):
    for n, line in lines_outside_fences(path):
        m = REFERENCE_DEF.match(line)
        if m:
            yield n, m.group(1)
            continue
        for m in INLINE_LINK.finditer(strip_code(line)):
            yield n, m.group(1)


def check(path):
    errors = []
    here = os.path.dirname(os.path.realpath(path))
    for n, target in links(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        if file_part:
            resolved = os.path.realpath(os.path.join(here, file_part))
            if not (resolved == ROOT or resolved.startswith(ROOT + os.sep)):
                errors.append(f"{path}:{n}: {target}: outside the repository")
                continue
            if not os.path.exists(resolved):
                errors.append(f"{path}:{n}: {target}: no such file")
                continue
        else:
            resolved = os.path.realpath(path)
        if anchor:
            if not resolved.endswith(".md") or os.path.isdir(resolved):
                errors.append(f"{path}:{n}: {target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(resolved):
                errors.append(f"{path}:{n}: {target}: no heading with this anchor")
    return errors


def main(paths):
    errors = []
    count = 0
    for path in paths:
        errors.extend(check(path))
        count += sum(1 for _ in links(path))
    for e in errors:
        print(e)
    print(f"{count} links in {len(paths)} files, {len(errors)} broken")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
