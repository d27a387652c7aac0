#!/usr/bin/env python3
"""Turn a crate's rustdoc JSON into a sorted listing of its public API, one item per line.

    python3 .ci/api_listing.py target/doc/activity_seaorm.json > .ci/api/activity-seaorm.txt

Every item reachable from the crate root under a public path is listed with its kind, and
with its signature where it has one (functions and methods, fields, variants, constants,
statics, type aliases), plus the trait impls of each public type (derives included; auto
traits and blanket impls left out). An item re-exported from another crate is listed as a
re-export with its source path: that crate's own listing has its details. `.ci/run`
regenerates the listings and diffs them with the committed ones, so every change to the
public API shows up in review.
"""

import json
import sys


def main(path):
    doc = json.load(open(path, encoding="utf-8"))
    index = doc["index"]
    paths = doc["paths"]
    lines = set()

    def item(i):
        return index.get(str(i))

    # ---- types -------------------------------------------------------------------------
    def generic_args(a):
        if a is None:
            return ""
        if "angle_bracketed" in a:
            ab = a["angle_bracketed"]
            parts = [generic_arg(x) for x in ab["args"]]
            parts += [constraint(c) for c in ab.get("constraints", [])]
            return "<" + ", ".join(parts) + ">" if parts else ""
        if "parenthesized" in a:
            p = a["parenthesized"]
            out = "(" + ", ".join(ty(t) for t in p["inputs"]) + ")"
            if p.get("output"):
                out += " -> " + ty(p["output"])
            return out
        if "return_type_notation" in a or a == "return_type_notation":
            return "(..)"
        return json.dumps(a)

    def generic_arg(x):
        if "type" in x:
            return ty(x["type"])
        if "lifetime" in x:
            return x["lifetime"]
        if "const" in x:
            return x["const"].get("expr", "_")
        if x == "infer" or "infer" in x:
            return "_"
        return json.dumps(x)

    def constraint(c):
        name = c["name"] + generic_args(c.get("args"))
        b = c["binding"]
        if "equality" in b:
            e = b["equality"]
            return name + " = " + (ty(e["type"]) if "type" in e else e["constant"].get("expr", "_"))
        return name + ": " + bounds(b["constraint"])

    def path_str(p):
        return p["path"] + generic_args(p.get("args"))

    def bound(b):
        if "trait_bound" in b:
            tb = b["trait_bound"]
            prefix = {"maybe": "?", "maybe_const": "~const "}.get(tb.get("modifier"), "")
            hr = ""
            if tb.get("generic_params"):
                hr = "for<" + ", ".join(g["name"] for g in tb["generic_params"]) + "> "
            return hr + prefix + path_str(tb["trait"])
        if "outlives" in b:
            return b["outlives"]
        if "use" in b:
            return "use<" + ", ".join(str(x) for x in b["use"]) + ">"
        return json.dumps(b)

    def bounds(bs):
        return " + ".join(bound(b) for b in bs)

    def ty(t):
        if t is None:
            return "()"
        if isinstance(t, str):
            return "_" if t == "infer" else t
        k, v = next(iter(t.items()))
        if k == "resolved_path":
            return path_str(v)
        if k == "generic" or k == "primitive":
            return v
        if k == "borrowed_ref":
            lt = (v["lifetime"] + " ") if v.get("lifetime") else ""
            return "&" + lt + ("mut " if v["is_mutable"] else "") + ty(v["type"])
        if k == "raw_pointer":
            return ("*mut " if v["is_mutable"] else "*const ") + ty(v["type"])
        if k == "slice":
            return "[" + ty(v) + "]"
        if k == "array":
            return "[" + ty(v["type"]) + "; " + v["len"] + "]"
        if k == "tuple":
            return "(" + ", ".join(ty(x) for x in v) + ("," if len(v) == 1 else "") + ")"
        if k == "impl_trait":
            return "impl " + bounds(v)
        if k == "dyn_trait":
            parts = [bound({"trait_bound": tb}) for tb in v["traits"]]
            if v.get("lifetime"):
                parts.append(v["lifetime"])
            return "dyn " + " + ".join(parts)
        if k == "qualified_path":
            self_ty = ty(v["self_type"])
            if v.get("trait") and v["trait"].get("path"):
                self_ty = "<" + self_ty + " as " + path_str(v["trait"]) + ">"
            return self_ty + "::" + v["name"] + generic_args(v.get("args"))
        if k == "function_pointer":
            return "fn" + signature(v["sig"])
        if k == "pat":
            return ty(v["type"])
        return json.dumps(t)

    def generics(g):
        params = []
        for p in g["params"]:
            kind = p["kind"]
            if "lifetime" in kind:
                outl = kind["lifetime"].get("outlives") or []
                params.append(p["name"] + (": " + " + ".join(outl) if outl else ""))
            elif "type" in kind:
                if kind["type"].get("is_synthetic"):
                    continue  # `impl Trait` in argument position: shown there
                b = kind["type"]["bounds"]
                params.append(p["name"] + (": " + bounds(b) if b else ""))
            elif "const" in kind:
                params.append("const " + p["name"] + ": " + ty(kind["const"]["type"]))
        head = "<" + ", ".join(params) + ">" if params else ""
        preds = []
        for w in g["where_predicates"]:
            if "bound_predicate" in w:
                bp = w["bound_predicate"]
                preds.append(ty(bp["type"]) + ": " + bounds(bp["bounds"]))
            elif "lifetime_predicate" in w:
                lp = w["lifetime_predicate"]
                preds.append(lp["lifetime"] + ": " + " + ".join(lp["outlives"]))
            elif "eq_predicate" in w:
                ep = w["eq_predicate"]
                rhs = ep["rhs"]
                preds.append(ty(ep["lhs"]) + " = " + (ty(rhs["type"]) if "type" in rhs else "_"))
        tail = " where " + ", ".join(preds) if preds else ""
        return head, tail

    def signature(sig):
        args = []
        for name, t in sig["inputs"]:
            if name == "self":
                s = ty(t)
                args.append({"Self": "self", "&Self": "&self", "&mut Self": "&mut self"}.get(s, "self: " + s))
            else:
                args.append(name + ": " + ty(t))
        out = "(" + ", ".join(args) + ")"
        if sig.get("output") is not None:
            out += " -> " + ty(sig["output"])
        return out

    def fn_line(name, f):
        h = f["header"]
        quals = ("const " if h["is_const"] else "") + ("async " if h["is_async"] else "") + (
            "unsafe " if h["is_unsafe"] else "")
        head, tail = generics(f["generics"])
        return quals + "fn " + name + head + signature(f["sig"]) + tail

    # ---- walk ----------------------------------------------------------------------------
    def add(kind, path, rest=""):
        lines.add(f"{kind} {path}{rest}")

    def fields_of(kind_obj, owner):
        """Plain or tuple fields of a struct or variant."""
        if kind_obj == "unit" or kind_obj == "plain":
            return
        if "plain" in kind_obj:
            ids = kind_obj["plain"]["fields"]
            stripped = kind_obj["plain"].get("has_stripped_fields")
        elif "struct" in kind_obj:
            ids = kind_obj["struct"]["fields"]
            stripped = kind_obj["struct"].get("has_stripped_fields")
        elif "tuple" in kind_obj:
            for n, fid in enumerate(kind_obj["tuple"]):
                if fid is None:
                    continue
                f = item(fid)
                add("field", f"{owner}.{n}", ": " + ty(f["inner"]["struct_field"]))
            return
        else:
            return
        for fid in ids:
            f = item(fid)
            add("field", f"{owner}.{f['name']}", ": " + ty(f["inner"]["struct_field"]))
        if stripped:
            add("field", f"{owner}.<private fields>")

    def impls(ids, owner):
        for iid in ids:
            im = item(iid)
            if im is None:
                continue
            imp = im["inner"]["impl"]
            if imp["is_synthetic"] or imp["blanket_impl"] is not None:
                continue
            head, tail = generics(imp["generics"])
            if imp["trait"] is not None:
                if imp["trait"]["path"].endswith("StructuralPartialEq"):
                    continue  # a compiler detail of `derive(PartialEq)`
                neg = "!" if imp["is_negative"] else ""
                add("impl", f"{owner}: {neg}{path_str(imp['trait'])}", f" (impl{head} for {ty(imp['for'])}{tail})")
                continue
            for aid in imp["items"]:
                a = item(aid)
                if a is None or a["visibility"] != "public":
                    continue
                assoc(a, owner, "method")

    def assoc(a, owner, fn_kind):
        inner = a["inner"]
        name = a["name"]
        if "function" in inner:
            add(fn_kind, f"{owner}::{name}", " " + fn_line(name, inner["function"]))
        elif "assoc_const" in inner:
            c = inner["assoc_const"]
            add("assoc_const", f"{owner}::{name}", ": " + ty(c["type"]) + (" = " + c["value"] if c.get("value") else ""))
        elif "assoc_type" in inner:
            t = inner["assoc_type"]
            b = bounds(t["bounds"]) if t.get("bounds") else ""
            add("assoc_type", f"{owner}::{name}", (": " + b if b else "") + (" = " + ty(t["type"]) if t.get("type") else ""))

    def walk(iid, path, stack):
        it = item(iid)
        if it is None:
            p = paths.get(str(iid))
            src = "::".join(p["path"]) if p else "?"
            kind = p["kind"] if p else "?"
            add("reexport", path, f" = {kind} {src}")
            return
        inner = it["inner"]
        kind = next(iter(inner))
        v = inner[kind]
        if kind == "use":
            if v["is_glob"]:
                target = item(v["id"]) if v.get("id") is not None else None
                if target is not None and "module" in target["inner"] and v["id"] not in stack:
                    for child in target["inner"]["module"]["items"]:
                        walk_child(child, path, stack + [v["id"]])
                else:
                    add("reexport", path + "::*", f" = glob {v['source']}::*")
                return
            if v.get("id") is None:
                add("reexport", path, f" = {v['source']}")
                return
            walk(v["id"], path, stack)
            return
        if kind == "module":
            add("mod", path)
            if iid in stack:
                return
            for child in v["items"]:
                walk_child(child, path, stack + [iid])
        elif kind == "struct":
            head, tail = generics(v["generics"])
            add("struct", path, head + tail)
            fields_of(v["kind"], path)
            impls(v["impls"], path)
        elif kind == "union":
            head, tail = generics(v["generics"])
            add("union", path, head + tail)
            for fid in v["fields"]:
                f = item(fid)
                add("field", f"{path}.{f['name']}", ": " + ty(f["inner"]["struct_field"]))
            impls(v["impls"], path)
        elif kind == "enum":
            head, tail = generics(v["generics"])
            add("enum", path, head + tail)
            for vid in v["variants"]:
                var = item(vid)
                vk = var["inner"]["variant"]["kind"]
                vpath = f"{path}::{var['name']}"
                shape = "" if vk == "plain" else (" (tuple)" if "tuple" in vk else " {struct}")
                add("variant", vpath, shape)
                fields_of(vk, vpath)
            if v.get("has_stripped_variants"):
                add("variant", f"{path}::<private variants>")
            impls(v["impls"], path)
        elif kind == "trait":
            head, tail = generics(v["generics"])
            sup = (": " + bounds(v["bounds"])) if v.get("bounds") else ""
            quals = ("unsafe " if v.get("is_unsafe") else "") + ("auto " if v.get("is_auto") else "")
            add("trait", path, head + sup + tail + (" " + quals.strip() if quals else ""))
            for aid in v["items"]:
                assoc(item(aid), path, "trait_fn")
        elif kind == "function":
            add("fn", path, " " + fn_line(it["name"], v))
        elif kind == "constant":
            add("const", path, ": " + ty(v["type"]) + " = " + v["const"].get("expr", "_"))
        elif kind == "static":
            add("static", path, ": " + ("mut " if v.get("is_mutable") else "") + ty(v["type"]))
        elif kind == "type_alias":
            head, tail = generics(v["generics"])
            add("type", path, head + " = " + ty(v["type"]) + tail)
        elif kind == "macro":
            add("macro", path)
        elif kind == "proc_macro":
            add("proc_macro", path, f" ({v['kind']})")
        elif kind in ("trait_alias", "extern_type", "extern_crate", "primitive"):
            add(kind, path)
        elif kind == "impl":
            return
        else:
            add(kind, path)

    def walk_child(child, prefix, stack):
        it = item(child)
        if it is None:
            return
        if "impl" in it["inner"]:
            return
        if "use" in it["inner"]:
            u = it["inner"]["use"]
            name = "" if u["is_glob"] else "::" + u["name"]
            walk(child, prefix + name if name else prefix, stack)
            return
        walk(child, f"{prefix}::{it['name']}", stack)

    root = item(doc["root"])
    walk(doc["root"], root["name"], [])
    for line in sorted(lines):
        print(line.replace("$crate::", ""))


if __name__ == "__main__":
    main(sys.argv[1])
