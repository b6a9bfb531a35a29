//! The house rules of ARCHITECTURE.md, checked on the source tree itself:
//!
//! - the crates depend in one direction only: `idemtop-core` on no other idemtop crate and on
//!   no UI crate, `idemtop-store` on core only, `idemtop-testkit` on core and store, the
//!   `idemtop` binary never on the benchmark;
//! - no cycle between the modules of a crate: for every module, the graph of references
//!   between its child modules (`crate::a::b`, `super::x` paths) has no cycle. The files of a
//!   directory module that share its namespace (`use super::*`) are one module split for
//!   reading and are not separate nodes;
//! - no source file of the product over 600 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates' source directories: the binary's `src/` and each `crates/*/src`.
fn crate_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs = vec![("idemtop".to_string(), root().join("src"))];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        dirs.push((name, dir.join("src")));
    }
    dirs
}

/// `a/b/mod.rs` -> `a::b`, `a/c.rs` -> `a::c`, `lib.rs`/`main.rs` -> `` (the crate root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Paths named after `prefix` in `text` (`crate::db::plan::make` -> `["db", "plan", "make"]`).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segs: Vec<String> = path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        out.push(segs);
    }
    out
}

/// Code without `//` comments (doc links are not dependencies).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cycles in a directed graph, as the nodes of each one found.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_cycle_between_the_modules_of_any_crate() {
    let mut cycles = Vec::new();
    let mut edge_count = 0;
    for (krate, src) in crate_dirs() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
        // Sibling edges, grouped by their parent module.
        let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for file in &files {
            if file.file_name().is_some_and(|n| n == "tests.rs")
                || file.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let from = module_of(&src, file);
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            let mut targets: Vec<Vec<String>> = paths_after(&code, "crate::");
            let parent: Vec<String> = from[..from.len().saturating_sub(1)].to_vec();
            for p in paths_after(&code, "super::") {
                let mut base = parent.clone();
                let mut p = p.as_slice();
                while p.first().is_some_and(|s| s == "super") {
                    base.pop();
                    p = &p[1..];
                }
                base.extend(p.iter().cloned());
                targets.push(base);
            }
            for t in targets {
                // The longest prefix of the path that is a module.
                let to = (0..=t.len())
                    .rev()
                    .map(|n| t[..n].to_vec())
                    .find(|m| modules.contains(m))
                    .unwrap_or_default();
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common < from.len() && common < to.len() {
                    graphs
                        .entry(from[..common].to_vec())
                        .or_default()
                        .entry(from[common].clone())
                        .or_default()
                        .insert(to[common].clone());
                    edge_count += 1;
                }
            }
        }
        for (parent, edges) in &graphs {
            if let Some(c) = find_cycle(edges) {
                cycles.push(format!(
                    "{krate}::{}: {}",
                    parent.join("::"),
                    c.join(" -> ")
                ));
            }
        }
    }
    assert!(
        edge_count > 50,
        "the checker found the references ({edge_count})"
    );
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_product_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for (_, src) in crate_dirs() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for f in files {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            if n > MAX_LINES {
                long.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The `[dependencies]` of a crate's manifest (names only).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap().trim();
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn the_crates_depend_in_one_direction() {
    let crates = root().join("crates");
    let core = dependencies(&crates.join("idemtop-core/Cargo.toml"));
    for forbidden in [
        "idemtop",
        "idemtop-store",
        "idemtop-testkit",
        "idemtop-bench",
        "ratatui",
        "crossterm",
        "clap",
    ] {
        assert!(
            !core.contains(forbidden),
            "idemtop-core depends on {forbidden}"
        );
    }
    let store = dependencies(&crates.join("idemtop-store/Cargo.toml"));
    let idemtop_deps: Vec<_> = store.iter().filter(|d| d.starts_with("idemtop")).collect();
    assert_eq!(
        idemtop_deps,
        ["idemtop-core"],
        "the store depends on core only"
    );
    for ui in ["ratatui", "crossterm", "clap"] {
        assert!(!store.contains(ui), "the store depends on {ui}");
    }
    let testkit = dependencies(&crates.join("idemtop-testkit/Cargo.toml"));
    let idemtop_deps: Vec<_> = testkit
        .iter()
        .filter(|d| d.starts_with("idemtop"))
        .collect();
    assert_eq!(idemtop_deps, ["idemtop-core", "idemtop-store"]);
    let binary = dependencies(&root().join("Cargo.toml"));
    assert!(binary.contains("idemtop-core"), "{binary:?}");
    assert!(
        !binary.contains("idemtop-bench"),
        "the benchmark never ships in the idemtop binary"
    );
}

/// A key named in a string by hand, as in `"(B: measure again)"`, `"[y]es"` or `"press r"`.
fn hand_written_hint(literal: &str) -> Option<String> {
    const NAMES: [&str; 6] = ["Esc", "Enter", "Tab", "space", "Backspace", "Ctrl-"];
    let key_at = |s: &str| -> Option<usize> {
        let c = s.chars().next()?;
        if let Some(n) = NAMES.iter().find(|n| s.starts_with(**n)) {
            return Some(n.len() + if *n == "Ctrl-" { 1 } else { 0 });
        }
        let single = c.is_ascii_alphabetic() || "?/+-".contains(c);
        let next = s[c.len_utf8()..].chars().next();
        (single && !next.is_some_and(|n| n.is_ascii_alphanumeric())).then_some(c.len_utf8())
    };
    for (i, ch) in literal.char_indices() {
        let rest = &literal[i + ch.len_utf8()..];
        match ch {
            '(' => {
                if let Some(n) = key_at(rest) {
                    if rest[n..].starts_with(':') {
                        return Some(literal.to_string());
                    }
                }
            }
            '[' => {
                if let Some(n) = key_at(rest) {
                    if rest[n..].starts_with(']') {
                        return Some(literal.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    for verb in ["press ", "hit ", "Press "] {
        if let Some(i) = literal.find(verb) {
            if key_at(&literal[i + verb.len()..]).is_some() {
                return Some(literal.to_string());
            }
        }
    }
    None
}

#[test]
fn the_hint_checker_recognises_a_hand_written_hint() {
    assert!(hand_written_hint(" Free space (B: measure again) ").is_some());
    assert!(hand_written_hint("[y] confirm").is_some());
    assert!(hand_written_hint("press Esc to stop").is_some());
    assert!(hand_written_hint("Operations (~ exact pass; {}: records)").is_none());
    assert!(hand_written_hint("a (second charge)").is_none());
}

#[test]
fn every_key_hint_comes_from_the_key_table() {
    let mut files = Vec::new();
    rust_files(&root().join("src/ui"), &mut files);
    rust_files(&root().join("src/app"), &mut files);
    rust_files(&root().join("src/commands/watch"), &mut files);
    let mut found = Vec::new();
    for f in files {
        let path = f.display().to_string();
        if path.contains("/keys/") || path.contains("/tests") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&f).unwrap());
        // The string literals: every other piece between double quotes (escaped quotes aside).
        let unescaped = code.replace("\\\"", "");
        for (i, piece) in unescaped.split('"').enumerate() {
            if i % 2 == 1 {
                if let Some(h) = hand_written_hint(piece) {
                    found.push(format!("{path}: {h:?}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "key hints written by hand (name the key with keys::key_for / keys::hint):\n{}",
        found.join("\n")
    );
}
