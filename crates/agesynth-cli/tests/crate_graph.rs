//! The crate graph keeps to ARCHITECTURE.md: every dependency edge between
//! our crates (from `cargo metadata`) must be listed in its "API boundaries"
//! table, and every crate of the workspace must have a row. A new edge that
//! looks sideways or up fails here until the table (and the design) allows it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

/// Allowed edges: crate → (normal, dev-only extras), short names.
type Allowed = BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn short(name: &str) -> String {
    name.strip_prefix("agesynth-").unwrap_or(name).to_string()
}

fn names(list: &str) -> BTreeSet<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::to_string)
        .collect()
}

/// Parses the fenced block after `<!-- crate-graph -->` in ARCHITECTURE.md.
fn allowed() -> Allowed {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let after = text
        .split("<!-- crate-graph -->")
        .nth(1)
        .expect("ARCHITECTURE.md has a `<!-- crate-graph -->` table");
    let block = after
        .split("```")
        .nth(1)
        .expect("the crate-graph marker is followed by a fenced block");
    let mut out = Allowed::new();
    for line in block.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("crate-graph line without `:`: {line}"));
        let (normal, dev) = match rest.split_once('|') {
            Some((n, d)) => (
                n,
                d.trim()
                    .strip_prefix("dev:")
                    .unwrap_or_else(|| panic!("`| dev:` expected in: {line}")),
            ),
            None => (rest, ""),
        };
        let prev = out.insert(short(name.trim()), (names(normal), names(dev)));
        assert!(prev.is_none(), "crate {name} listed twice");
    }
    out
}

/// Our crates' dependency edges: crate → [(dependency, is_dev)].
fn edges() -> BTreeMap<String, Vec<(String, bool)>> {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut graph = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if !name.starts_with("agesynth") {
            continue;
        }
        let deps = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"].as_str().unwrap().starts_with("agesynth"))
            .map(|d| {
                (
                    short(d["name"].as_str().unwrap()),
                    d["kind"].as_str() == Some("dev"),
                )
            })
            .collect();
        graph.insert(short(name), deps);
    }
    graph
}

#[test]
fn every_edge_between_our_crates_is_allowed() {
    let allowed = allowed();
    let graph = edges();
    assert!(graph.len() >= 10, "found only {} crates", graph.len());
    let mut bad = Vec::new();
    for (krate, deps) in &graph {
        let Some((normal, dev)) = allowed.get(krate) else {
            bad.push(format!(
                "{krate} has no row in ARCHITECTURE.md's crate-graph table"
            ));
            continue;
        };
        for (dep, is_dev) in deps {
            let ok = normal.contains(dep) || (*is_dev && dev.contains(dep));
            if !ok && dep != krate {
                bad.push(format!(
                    "{krate} → {dep}{} is not allowed by ARCHITECTURE.md",
                    if *is_dev { " (dev)" } else { "" }
                ));
            }
        }
    }
    for krate in allowed.keys() {
        if !graph.contains_key(krate) {
            bad.push(format!(
                "ARCHITECTURE.md lists {krate}, which is not in the workspace"
            ));
        }
    }
    assert!(bad.is_empty(), "crate graph:\n{}", bad.join("\n"));
}

#[test]
fn the_core_crate_and_the_application_do_not_look_up() {
    // The invariants the table encodes, stated once more so that an edit of
    // the table that breaks them fails too.
    let allowed = allowed();
    assert!(allowed["core"].0.is_empty() && allowed["core"].1.is_empty());
    for app in ["pipeline", "eval", "serve"] {
        assert!(
            !allowed[app].0.contains("train"),
            "{app} must not depend on the trainers"
        );
    }
    for model in [
        "nn",
        "facegan",
        "cstylegan",
        "critic",
        "face",
        "losses",
        "data",
    ] {
        for upper in ["train", "pipeline", "eval", "serve", "cli"] {
            assert!(
                !allowed[model].0.contains(upper),
                "{model} must not depend on {upper}"
            );
        }
    }
}
