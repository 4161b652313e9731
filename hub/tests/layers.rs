//! The hub's folders import each other without a circle (docs/architecture.md): every
//! `crate::<module>` path in a folder's files is an edge; the graph must be acyclic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `lib.rs` re-exports `auth::ldap` as `crate::ldap` for `config.rs`.
const ALIASES: &[(&str, &str)] = &[("ldap", "auth")];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy().to_string();
        if top == "lib.rs" || top == "main.rs" {
            continue;
        }
        let module = top.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = g.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let name = ALIASES
                .iter()
                .find(|(a, _)| *a == name)
                .map_or(name.clone(), |(_, to)| to.to_string());
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    g
}

/// A path from `from` back to `to`, if there is one.
fn path_to(
    g: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in g.get(from).into_iter().flatten() {
        if next == to {
            return Some(vec![from.to_string(), to.to_string()]);
        }
        if seen.insert(next.clone()) {
            if let Some(mut p) = path_to(g, next, to, seen) {
                p.insert(0, from.to_string());
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn no_import_circle_between_the_hubs_folders() {
    let g = graph();
    assert!(g.len() >= 10, "folders found: {:?}", g.keys());
    for m in g.keys() {
        if let Some(cycle) = path_to(&g, m, m, &mut BTreeSet::new()) {
            panic!("import circle: {}", cycle.join(" -> "));
        }
    }
    // The bottom layers stand alone.
    for leaf in ["store", "http", "util", "record"] {
        assert!(g[leaf].is_empty(), "{leaf} imports {:?}", g[leaf]);
    }
}
