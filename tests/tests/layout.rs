//! The layout is the architecture: no module of a library crate imports, directly or through
//! others, a module that imports it back, and the write path's main line imports only modules
//! after it (`hooks → before → frame → flush → sink → events`).
//!
//! Read from the sources: every `crate::…`, `super::…` and `self::…` path outside comments and
//! `#[cfg(test)]` modules is an edge from the file to the deepest module it names. A path
//! naming a module's own descendant or its ancestor's item counts like any other: a parent that
//! uses its child while the child uses the parent is a cycle too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's module tree: module path (`["write", "sink"]`) → source file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(src.to_path_buf(), Vec::<String>::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.clone();
                p.push(name);
                stack.push((path, p));
            } else if path.extension().is_some_and(|e| e == "rs") {
                if prefix.is_empty() && name == "main" || path.starts_with(src.join("bin")) {
                    continue;
                }
                let mut p = prefix.clone();
                if !(name == "mod" || (prefix.is_empty() && name == "lib")) {
                    p.push(name);
                }
                out.insert(p, path);
            }
        }
    }
    out
}

/// The code of a file without comments, string literals' contents and `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        if pending_test && trimmed.starts_with("mod ") && skip_depth.is_none() {
            skip_depth = Some(depth);
        }
        pending_test = false;
        for ch in line.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if let Some(d) = skip_depth {
            if depth <= d && line.contains('}') {
                skip_depth = None;
            }
            continue;
        }
        // String literals hold SQL and messages, not paths.
        let mut in_str = false;
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(ch);
            }
            prev = ch;
        }
        out.push('\n');
    }
    out
}

/// Every path that starts with `crate`, `super` or `self`, expanded over `{a, b::c}` groups.
fn paths(code: &str) -> Vec<(String, Vec<String>)> {
    let bytes: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        for root in ["crate", "super", "self"] {
            let r: Vec<char> = root.chars().collect();
            if starts_word
                && bytes[i..].starts_with(&r)
                && bytes[i + r.len()..].starts_with(&[':', ':'])
                && !(i > 0 && bytes[i - 1] == '$')
            {
                let (tails, end) = expand(&bytes, i + r.len() + 2);
                for t in tails {
                    out.push((root.to_string(), t));
                }
                i = end;
                break;
            }
        }
        i += 1;
    }
    out
}

/// The paths at `bytes[i..]` (after a `::`): one, or one per member of a `{…}` group.
fn expand(bytes: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut segs = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == '{' {
            let mut all = Vec::new();
            i += 1;
            loop {
                while i < bytes.len() && (bytes[i].is_whitespace() || bytes[i] == ',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == '}' {
                    break;
                }
                let (tails, end) = expand(bytes, i);
                for t in tails {
                    let mut p = segs.clone();
                    p.extend(t);
                    all.push(p);
                }
                i = end;
            }
            return (all, i + 1);
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_alphanumeric() || bytes[i] == '_') {
            i += 1;
        }
        if start == i {
            return (vec![segs], i);
        }
        segs.push(bytes[start..i].iter().collect());
        if bytes[i..].starts_with(&[':', ':']) {
            i += 2;
        } else {
            return (vec![segs], i);
        }
    }
}

/// Names the crate root re-exports (`pub use context::ActivityContext;`) → the module they
/// come from, so `crate::ActivityContext` is an edge to `context`, not to the root.
fn root_exports(
    root: &str,
    mods: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let code = code(root);
    for stmt in code.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let chars: Vec<char> = stmt[at + 8..].chars().collect();
        for path in expand(&chars, 0).0 {
            let Some(last) = path.last() else { continue };
            let module = (1..path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| mods.contains_key(p));
            if let Some(module) = module {
                out.insert(last.clone(), module);
            }
        }
    }
    out
}

/// Module → the modules it imports (never itself). The root's own edges are left out: it
/// declares and re-exports every module.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mods = modules(src);
    let exports = mods
        .get(&Vec::new())
        .map(|root| root_exports(&std::fs::read_to_string(root).unwrap(), &mods))
        .unwrap_or_default();
    let mut g = BTreeMap::new();
    for (module, file) in &mods {
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let mut edges = BTreeSet::new();
        for (root, tail) in paths(&code(&text)) {
            let mut full = match root.as_str() {
                "crate" => Vec::new(),
                "super" => {
                    // `super` of module `a::b` is `a`, whether in `a/b.rs` or `a/b/mod.rs`.
                    let mut base = module.clone();
                    base.pop();
                    base
                }
                _ => module.clone(),
            };
            let mut tail = tail;
            while tail.first().is_some_and(|s| s == "super") {
                full.pop();
                tail.remove(0);
            }
            full.extend(tail);
            // The deepest module the path names.
            let mut target = (0..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|p| mods.contains_key(p))
                .unwrap_or_default();
            if target.is_empty()
                && let Some(module) = full.first().and_then(|name| exports.get(name))
            {
                target = module.clone();
            }
            if &target != module {
                edges.insert(target);
            }
        }
        g.insert(module.clone(), edges);
    }
    g
}

/// One cycle of `g`, if any, as the modules along it.
fn cycle(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        n: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match marks.get(m).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut c: Vec<String> = stack[at..].iter().map(|p| name(p)).collect();
                    c.push(name(m));
                    return Some(c);
                }
                Mark::New => {
                    if let Some(c) = visit(m, g, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in g.keys() {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New
            && let Some(c) = visit(n, g, &mut marks, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn name(p: &[String]) -> String {
    if p.is_empty() {
        "crate".into()
    } else {
        p.join("::")
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

const CRATES: [&str; 4] = [
    "activity-core",
    "activity-derive",
    "activity-seaorm",
    "activity-nats",
];

#[test]
fn no_module_imports_itself_back() {
    for krate in CRATES {
        let g = graph(&workspace().join(krate).join("src"));
        assert!(
            g.len() > 1 || krate == "activity-derive",
            "{krate}: no modules found"
        );
        if let Some(c) = cycle(&g) {
            panic!("{krate}: import cycle {}", c.join(" → "));
        }
    }
}

/// Folder by folder too: `write`, `read`, `ops`, `schema`, `checked` and the root files form a
/// DAG, so each side can be read without the ones that use it.
#[test]
fn the_library_sides_form_a_dag() {
    let g = graph(&workspace().join("activity-seaorm/src"));
    let mut sides: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, edges) in &g {
        if m.is_empty() {
            continue; // lib.rs re-exports every side
        }
        let side = m[..1].to_vec();
        let entry = sides.entry(side.clone()).or_default();
        for e in edges {
            if !e.is_empty() && e[..1] != side[..] {
                entry.insert(e[..1].to_vec());
            }
        }
    }
    assert!(sides.contains_key(&vec!["write".to_string()]), "{sides:?}");
    if let Some(c) = cycle(&sides) {
        panic!(
            "activity-seaorm: sides import each other: {}",
            c.join(" → ")
        );
    }
    // The sides' known directions: operations build on reading and writing, never the reverse.
    let side = |s: &str| sides.get(&vec![s.to_string()]).cloned().unwrap_or_default();
    for (lower, upper) in [
        ("write", "ops"),
        ("read", "ops"),
        ("schema", "write"),
        ("schema", "read"),
    ] {
        assert!(
            !side(lower).contains(&vec![upper.to_string()]),
            "{lower} imports {upper}"
        );
    }
}

/// The write path's main line, in the order an entry travels: nothing in the write path calls
/// back into the hooks, and the two last steps (the INSERT, the events) import no step before
/// them.
#[test]
fn the_write_path_reads_in_the_order_data_flows() {
    let g = graph(&workspace().join("activity-seaorm/src"));
    let w = |s: &str| vec!["write".to_string(), s.to_string()];
    for (module, edges) in &g {
        assert!(
            !edges.contains(&w("hooks")),
            "{} imports write::hooks",
            name(module)
        );
    }
    let line = ["hooks", "before", "frame", "flush", "sink", "events"];
    for (i, step) in line.iter().enumerate().skip(4) {
        let edges = g
            .get(&w(step))
            .unwrap_or_else(|| panic!("no write/{step}.rs"));
        for earlier in &line[..i] {
            assert!(
                !edges.contains(&w(earlier)),
                "write::{step} imports write::{earlier}, which comes before it"
            );
        }
    }
}

/// The checker itself finds a cycle where there is one, and resolves groups and `super`.
#[test]
fn the_checker_sees_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x;\nuse crate::{b::{Thing}};\n").unwrap();
    std::fs::write(
        src.join("a/x.rs"),
        "// use crate::b;\nfn f() { super::g() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "fn t() { let s = \"crate::a\"; }\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
    )
    .unwrap();
    let g = graph(src);
    assert_eq!(cycle(&g), None, "{g:?}");
    assert!(g[&vec!["a".to_string(), "x".to_string()]].contains(&vec!["a".to_string()]));
    std::fs::write(src.join("b.rs"), "use crate::a::x::f;\n").unwrap();
    let c = cycle(&graph(src)).expect("a → b → a::x → a");
    assert!(c.contains(&"b".to_string()), "{c:?}");
}
