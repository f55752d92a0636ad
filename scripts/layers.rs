//! The layer check: `./scripts/test` compiles this file with plain `rustc` (std only) and runs
//! it over `src/` before anything else. It fails when a module names a higher layer or when
//! modules import each other in a cycle.
//!
//! Layers, bottom up: core → infra → flows → http → tasks → startup (lib.rs and main.rs sit
//! above all). A unit is `<layer>::<module>` (`flows::queue`, `infra::store`, a folder's files
//! together); its edges are the `crate::…` paths it names (use-trees with braces included),
//! `super::…` from a layer's direct files, and a `mod.rs` naming its own children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 7] = ["core", "infra", "flows", "http", "tasks", "startup", "root"];

fn rank(layer: &str) -> usize {
    LAYERS.iter().position(|l| *l == layer).unwrap_or(LAYERS.len() - 1)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (layer, unit) of a file: `src/flows/queue.rs` → ("flows", "flows::queue").
fn unit_of(rel: &[String]) -> (String, String) {
    match rel {
        [file] if file == "startup.rs" => ("startup".into(), "startup".into()),
        [file] => ("root".into(), file.trim_end_matches(".rs").into()),
        [layer, rest @ ..] => {
            let m = rest[0].trim_end_matches(".rs");
            (layer.clone(), format!("{layer}::{m}"))
        }
        [] => unreachable!(),
    }
}

/// The unit a path names: `["flows", "queue", "join"]` → `flows::queue`; an item of a layer's
/// `mod.rs` (`flows::Deps`) → `flows::mod`.
fn unit_named(src: &Path, segs: &[String]) -> Option<String> {
    let layer = segs.first()?;
    if layer == "startup" {
        return Some("startup".into());
    }
    if !LAYERS[..5].contains(&layer.as_str()) {
        return None;
    }
    match segs.get(1) {
        Some(m) if src.join(layer).join(format!("{m}.rs")).exists() => Some(format!("{layer}::{m}")),
        Some(m) if src.join(layer).join(m).is_dir() => Some(format!("{layer}::{m}")),
        _ => Some(format!("{layer}::mod")),
    }
}

/// The code without `//` comments (a `//` inside a string only hides the rest of its line).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path of a use-tree starting at `s` (just after `crate::`): `{a, b::{c, D}}` included.
fn tree(s: &[char], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let skip_ws = |mut i: usize| {
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    if i < s.len() && s[i] == '{' {
        i += 1;
        loop {
            i = skip_ws(i);
            if i >= s.len() || s[i] == '}' {
                return i + 1;
            }
            i = tree(s, i, prefix.clone(), out);
            i = skip_ws(i);
            if i < s.len() && s[i] == ',' {
                i += 1;
            }
        }
    }
    let start = i;
    while i < s.len() && is_ident(s[i]) {
        i += 1;
    }
    let mut path = prefix;
    if i > start {
        path.push(s[start..i].iter().collect());
    }
    if i + 1 < s.len() && s[i] == ':' && s[i + 1] == ':' {
        return tree(s, i + 2, path, out);
    }
    out.push(path);
    i
}

fn main() {
    let src = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "src".into()));
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for path in &all {
        let rel: Vec<String> = path
            .strip_prefix(&src)
            .expect("under src")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let (layer, unit) = unit_of(&rel);
        let text = code(&std::fs::read_to_string(path).expect("read file"));
        let chars: Vec<char> = text.chars().collect();
        let mut named = Vec::new();
        for (at, _) in text.match_indices("crate::") {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let ci = text[..at].chars().count() + "crate::".len();
            let mut paths = Vec::new();
            tree(&chars, ci, Vec::new(), &mut paths);
            named.extend(paths);
        }
        // `super::x` from a layer's direct file names a sibling; a mod.rs naming `child::`.
        if rel.len() == 2 {
            let layer_dir = src.join(&rel[0]);
            let mut push_rel = |prefix: &str, base: Vec<String>| {
                for (at, _) in text.match_indices(prefix) {
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| is_ident(c) || c == ':') {
                        continue;
                    }
                    let ci = text[..at].chars().count() + prefix.len();
                    let mut paths = Vec::new();
                    tree(&chars, ci, base.clone(), &mut paths);
                    named.extend(paths);
                }
            };
            if rel[1] == "mod.rs" {
                for child in std::fs::read_dir(&layer_dir).expect("layer").flatten() {
                    let name = child.file_name().to_string_lossy().trim_end_matches(".rs").to_string();
                    if name != "mod" {
                        push_rel(&format!("{name}::"), vec![rel[0].clone(), name]);
                    }
                }
            } else {
                push_rel("super::", vec![rel[0].clone()]);
            }
        }
        for segs in named {
            let Some(target) = unit_named(&src, &segs) else { continue };
            if target == unit {
                continue;
            }
            let target_layer = target.split("::").next().unwrap_or("").to_string();
            if rank(&target_layer) > rank(&layer) {
                upward.push(format!("{}: {unit} ({layer}) names {}", rel.join("/"), segs.join("::")));
            }
            edges.entry(unit.clone()).or_default().insert(target);
        }
    }
    if std::env::var_os("LAYERS_EDGES").is_some() {
        for (from, to) in &edges {
            println!("{from} -> {}", to.iter().cloned().collect::<Vec<_>>().join(", "));
        }
    }
    let cycles = cycles(&edges);
    for u in &upward {
        eprintln!("upward import: {u}");
    }
    for c in &cycles {
        eprintln!("import cycle: {}", c.join(" → "));
    }
    let units: BTreeSet<&String> = edges.keys().chain(edges.values().flatten()).collect();
    if upward.is_empty() && cycles.is_empty() {
        println!("layers: {} units, {} files, imports run one way, no cycles", units.len(), all.len());
    } else {
        eprintln!("layers: {} upward imports, {} cycles (see scripts/layers.rs)", upward.len(), cycles.len());
        std::process::exit(1);
    }
}

/// Strongly connected components of more than one unit (Tarjan), each a cycle to break.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let edges = t.edges;
        for w in edges.get(v).into_iter().flatten() {
            if !t.index.contains_key(w.as_str()) {
                visit(t, w);
                let lw = t.low[w.as_str()];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w.as_str()) {
                let iw = t.index[w.as_str()];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}
