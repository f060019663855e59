//! The architecture, checked from the code: the `crate::` paths between
//! the top-level modules of `src/` form no cycle, the front doors
//! (`ipmi`, `redfish`) depend on the backend and never on each other,
//! the backend depends on no front door, no composer and no exporter,
//! and the simulator crate does not depend on the daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its files name.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src");
            let first = rel.components().next().expect("component");
            let top = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let targets = graph.entry(top.clone()).or_default();
            for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
                        // `use crate::{a, b::c};` (on one line)
                        group
                            .split([',', '}'])
                            .map(|s| s.trim().split("::").next().unwrap_or("").to_string())
                            .collect()
                    } else {
                        vec![
                            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .next()
                                .unwrap_or("")
                                .to_string(),
                        ]
                    };
                    for n in names.into_iter().filter(|n| !n.is_empty() && *n != top) {
                        targets.insert(n);
                    }
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(m) = stack.pop() {
        for next in graph.get(&m).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn the_top_level_modules_form_no_cycle() {
    let graph = edges();
    assert!(graph.contains_key("backend") && graph.contains_key("ipmi"));
    for m in graph.keys() {
        assert!(
            !reaches(&graph, m, m),
            "{m} reaches itself through crate:: paths: {graph:#?}"
        );
    }
}

#[test]
fn front_doors_stand_on_the_backend_alone() {
    let graph = edges();
    for door in ["ipmi", "redfish"] {
        assert!(reaches(&graph, door, "backend"), "{door} uses the backend");
    }
    assert!(!reaches(&graph, "ipmi", "redfish"), "{graph:#?}");
    assert!(!reaches(&graph, "redfish", "ipmi"), "{graph:#?}");
    for upper in [
        "ipmi", "redfish", "daemon", "metrics", "cli", "check", "export",
    ] {
        assert!(
            !reaches(&graph, "backend", upper),
            "the backend must not depend on {upper}: {graph:#?}"
        );
    }
}

#[test]
fn the_simulator_does_not_depend_on_the_daemon() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("novasim/Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("novasim manifest");
    let deps = text
        .split("[dependencies]")
        .nth(1)
        .expect("a dependencies table");
    for line in deps.lines() {
        let name = line.split('=').next().unwrap_or("").trim();
        assert!(
            name != "novabmc" && !name.starts_with("novabmc ") && name != "novabmc.workspace",
            "novasim depends on the daemon: {line}"
        );
    }
}
