//! Tidy: tests that keep the workspace in the shape the design describes.
//!
//! - The dependency graph reported by `cargo metadata` keeps to the allowed
//!   edges of the crate table in `ARCHITECTURE.md` and to its rules about
//!   external crates (burn, tonic/prost, tokio).
//! - The crates that must build no SQLite (orchestrator-core without its
//!   default `sqlite` feature, market-data, strategy, local-trainer) do not,
//!   with features resolved for each alone, as a project using it would.
//! - Every Rust module starts with a `//!` line saying what it is for.
//! - A published crate's README shows its crate doc's example.
//! - No test is skipped or marked as expected to panic (house style).
//! - Test code neither sleeps nor asserts on elapsed time (events or
//!   paused time instead), outside a short list of places with reasons.
//!
//! The checks are functions over plain data (metadata JSON, file text), unit
//! tested on synthetic input; the tests at the end apply them to the real
//! workspace.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The rules, transcribed from ARCHITECTURE.md.
// ---------------------------------------------------------------------------

/// The workspace crates a crate may name as normal dependencies.
#[derive(Debug, Clone, Copy)]
enum Internal {
    Only(&'static [&'static str]),
    Anything,
}

impl Internal {
    fn permits(self, dependency: &str) -> bool {
        match self {
            Self::Only(allowed) => allowed.contains(&dependency),
            Self::Anything => true,
        }
    }
}

/// The crate table of ARCHITECTURE.md ("may depend on"), plus the direct
/// edges to `orchestrator-core` and `progress` that the layers passing a
/// `CancellationToken` and progress down need (see docs/ARCHITECTURE.md).
/// Crates listed here
/// but not yet written are simply absent from the workspace; a workspace crate
/// missing here fails the check, so the table cannot silently fall behind.
const ALLOWED_EDGES: &[(&str, Internal)] = &[
    ("trdr-progress", Internal::Only(&[])),
    // Test support only (a dev-dependency of the crates it fuzzes).
    ("fuzz-corpus", Internal::Only(&[])),
    // Bench support only (a dev-dependency of the crates with benches).
    ("bench-support", Internal::Only(&[])),
    // A wrapper over Slurm's commands; the adapter that runs trainings as
    // Slurm jobs builds on it.
    ("slurm", Internal::Only(&[])),
    ("orchestrator-core", Internal::Only(&["trdr-progress"])),
    // Draws the epochs progress reports; nothing else.
    ("charts", Internal::Only(&["trdr-progress"])),
    (
        "market-data",
        Internal::Only(&["orchestrator-core", "trdr-progress"]),
    ),
    ("strategy", Internal::Only(&["market-data"])),
    (
        "local-trainer",
        Internal::Only(&[
            "orchestrator-core",
            "trdr-progress",
            "strategy",
            "market-data",
        ]),
    ),
    (
        "rpc",
        // strategy: the training request and its summary, market-data: a
        // data load's summary, converted to and from the wire here and only
        // here.
        Internal::Only(&[
            "orchestrator-core",
            "trdr-progress",
            "strategy",
            "market-data",
        ]),
    ),
    (
        "host-client",
        // market-data: the data host client hands back `Bar`s and implements
        // market-data's `RemoteBars`, so the data path stays free of gRPC.
        // strategy: it sends the training request.
        Internal::Only(&[
            "rpc",
            "orchestrator-core",
            "trdr-progress",
            "market-data",
            "strategy",
        ]),
    ),
    (
        "host-service",
        // training-manager: sessions train through the manager `trdr train`
        // and `trdr serve` use, so the host has no orchestration of its own.
        Internal::Only(&[
            "rpc",
            "training-manager",
            "local-trainer",
            "market-data",
            "strategy",
            "orchestrator-core",
            "trdr-progress",
        ]),
    ),
    (
        "training-adapter",
        // slurm: the Slurm executor runs trainings as batch jobs; strategy:
        // its job file carries the strategy as the manager built it.
        Internal::Only(&[
            "local-trainer",
            "host-client",
            "slurm",
            "strategy",
            "orchestrator-core",
            "trdr-progress",
        ]),
    ),
    (
        "training-manager",
        Internal::Only(&[
            "training-adapter",
            "strategy",
            "orchestrator-core",
            "trdr-progress",
            "market-data",
        ]),
    ),
    (
        "api-server",
        // host-client: data loads in host mode fetch from the data host.
        // charts: the dashboard draws a training's curves.
        Internal::Only(&[
            "rpc",
            "charts",
            "host-client",
            "training-manager",
            "market-data",
            "orchestrator-core",
            "trdr-progress",
        ]),
    ),
    ("cli", Internal::Anything),
    ("xtask", Internal::Anything),
];

/// Crates whose external normal dependencies are limited to a short list.
const EXTERNAL_ALLOWLIST: &[(&str, &[&str], &str)] = &[
    ("trdr-progress", &["serde"], "progress may use only serde"),
    ("charts", &[], "charts writes SVG by hand"),
];

/// Which workspace crates may use a family of external crates.
#[derive(Debug, Clone, Copy)]
enum Scope {
    OnlyIn(&'static [&'static str]),
    NotIn(&'static [&'static str]),
}

/// A family of external crates, such as `burn`, `burn-core`, `burn-ndarray`.
#[derive(Debug)]
struct Family {
    /// Package names of the family: a name matches when it equals a root or
    /// continues it with `-` or `_`.
    roots: &'static [&'static str],
    scope: Scope,
    /// Whether reaching the family through external crates counts too. The
    /// gRPC rule is about which of our crates speak gRPC: burn's own build
    /// tooling pulls prost in deep inside (burn-std -> cubecl-environment ->
    /// turso), which is not a use of it.
    transitive: bool,
    /// Why, in the words of the design; ends the violation message.
    why: &'static str,
}

impl Family {
    fn contains(&self, package: &str) -> bool {
        self.roots.iter().any(|root| {
            package.strip_prefix(root).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('-') || rest.starts_with('_')
            })
        })
    }

    fn allowed_in(&self, krate: &str) -> bool {
        match self.scope {
            Scope::OnlyIn(crates) => crates.contains(&krate),
            Scope::NotIn(crates) => !crates.contains(&krate),
        }
    }
}

/// A crate outside a family's scope must not reach the family through its
/// own external dependencies, directly or transitively. Reach through another
/// workspace crate is governed by `ALLOWED_EDGES` instead: that is how
/// `training-adapter` legitimately reaches tonic through `host-client`, while
/// `strategy` cannot reach burn because no allowed edge leads from it to a
/// burn user (`internal_edges_never_lead_into_burn_or_tokio` checks this).
const FAMILIES: &[Family] = &[
    Family {
        roots: &["burn"],
        scope: Scope::OnlyIn(&[
            "local-trainer",
            "host-service",
            "training-adapter",
            "training-manager",
            "api-server",
            "cli",
            "xtask",
        ]),
        transitive: true,
        why: "only local-trainer and the crates above it may use burn",
    },
    // cli reaches the servers only through host-client (clients) and
    // api-server/host-service (servers): it speaks no gRPC itself.
    Family {
        roots: &["tonic", "prost"],
        scope: Scope::OnlyIn(&["rpc", "host-client", "host-service", "api-server", "xtask"]),
        transitive: false,
        why: "only rpc, host-client, host-service and api-server may use tonic or prost",
    },
    Family {
        roots: &["tokio"],
        scope: Scope::NotIn(&["trdr-progress"]),
        transitive: true,
        why: "progress is pure: no tokio, no I/O",
    },
];

// ---------------------------------------------------------------------------
// Dependency graph check.
// ---------------------------------------------------------------------------

/// The parts of `cargo metadata` output the check needs: package names and
/// the normal (non-dev, non-build) dependency edges of the resolve graph.
#[derive(Debug)]
struct Graph<'a> {
    names: HashMap<&'a str, &'a str>,
    /// Workspace members by name.
    members: BTreeMap<&'a str, &'a str>,
    normal_deps: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn parse(metadata: &'a Value) -> Result<Self, String> {
        let str_field = |value: &'a Value, field: &str| -> Result<&'a str, String> {
            value[field]
                .as_str()
                .ok_or_else(|| format!("cargo metadata: `{field}` missing in {value}"))
        };
        let array = |value: &'a Value, field: &str| -> Result<&'a Vec<Value>, String> {
            value[field].as_array().ok_or_else(|| {
                format!("cargo metadata: `{field}` missing (was it run with --no-deps?)")
            })
        };

        let mut names = HashMap::new();
        for package in array(metadata, "packages")? {
            names.insert(str_field(package, "id")?, str_field(package, "name")?);
        }

        let mut members = BTreeMap::new();
        for id in array(metadata, "workspace_members")? {
            let id = id
                .as_str()
                .ok_or("cargo metadata: a workspace member id is not a string")?;
            let name = names
                .get(id)
                .ok_or_else(|| format!("cargo metadata: workspace member `{id}` has no package"))?;
            members.insert(*name, id);
        }

        let mut normal_deps = HashMap::new();
        let resolve = &metadata["resolve"];
        for node in array(resolve, "nodes")? {
            let mut deps = Vec::new();
            for dep in array(node, "deps")? {
                // A dependency can be normal and dev at once; it counts as
                // normal if any of its kinds is (`kind: null`).
                let normal = array(dep, "dep_kinds")?
                    .iter()
                    .any(|kind| kind["kind"].is_null());
                if normal {
                    deps.push(str_field(dep, "pkg")?);
                }
            }
            normal_deps.insert(str_field(node, "id")?, deps);
        }

        Ok(Self {
            names,
            members,
            normal_deps,
        })
    }

    fn name(&self, id: &'a str) -> &'a str {
        self.names.get(id).copied().unwrap_or(id)
    }

    fn is_member(&self, id: &str) -> bool {
        self.members.values().any(|member| *member == id)
    }

    fn deps(&self, id: &str) -> &[&'a str] {
        self.normal_deps.get(id).map_or(&[], Vec::as_slice)
    }

    /// Shortest paths from `start` to every external package matching
    /// `wanted`, walking external packages only. The search stops at a match,
    /// so `tokio-macros` is not reported behind `tokio`.
    fn external_paths(&self, start: &'a str, wanted: impl Fn(&str) -> bool) -> Vec<Vec<&'a str>> {
        let mut parent: HashMap<&'a str, &'a str> = HashMap::new();
        let mut seen: HashSet<&'a str> = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        let mut found = Vec::new();
        while let Some(id) = queue.pop_front() {
            for &dep in self.deps(id) {
                if self.is_member(dep) || !seen.insert(dep) {
                    continue;
                }
                parent.insert(dep, id);
                if wanted(self.name(dep)) {
                    let mut path = vec![self.name(dep)];
                    let mut at = id;
                    while at != start {
                        path.push(self.name(at));
                        at = parent[at];
                    }
                    path.reverse();
                    found.push(path);
                } else {
                    queue.push_back(dep);
                }
            }
        }
        found
    }
}

/// Checks the workspace's dependency graph, given the JSON of
/// `cargo metadata --format-version 1` (with the resolve graph), against the
/// design. Returns one human-readable line per violation, sorted; `Err` if the
/// metadata lacks what the check needs.
fn check_dependency_graph(metadata: &Value) -> Result<Vec<String>, String> {
    let graph = Graph::parse(metadata)?;
    let mut violations = Vec::new();

    for (&krate, &id) in &graph.members {
        let Some(&(_, internal)) = ALLOWED_EDGES.iter().find(|(name, _)| *name == krate) else {
            violations.push(format!(
                "workspace crate {krate} is missing from ALLOWED_EDGES in xtask/src/tidy.rs; \
                 add it to the table (and to the crate table of ARCHITECTURE.md)"
            ));
            continue;
        };
        let forbidden: Vec<&Family> = FAMILIES.iter().filter(|f| !f.allowed_in(krate)).collect();
        let allowlist = EXTERNAL_ALLOWLIST
            .iter()
            .find(|(name, _, _)| *name == krate);

        for &dep_id in graph.deps(id) {
            let dep = graph.name(dep_id);
            if graph.is_member(dep_id) {
                if !internal.permits(dep) {
                    let allowed = match internal {
                        Internal::Only([]) => "no workspace crate".to_owned(),
                        Internal::Only(list) => list.join(", "),
                        Internal::Anything => unreachable!("`Anything` permits every edge"),
                    };
                    violations.push(format!(
                        "{krate} depends on {dep}, which the design forbids \
                         ({krate} may depend on {allowed})"
                    ));
                }
            } else if let Some((_, allowed, why)) = allowlist
                && !allowed.contains(&dep)
                // A forbidden family reports it below, with its own reason.
                && !forbidden.iter().any(|family| family.contains(dep))
            {
                violations.push(format!(
                    "{krate} depends on {dep}, which the design forbids ({why})"
                ));
            }
        }

        for family in forbidden {
            let paths = graph.external_paths(id, |name| family.contains(name));
            for path in paths
                .iter()
                .filter(|path| family.transitive || path.len() == 1)
            {
                let (target, via) = path.split_last().expect("a path ends at its match");
                let why = family.why;
                violations.push(if via.is_empty() {
                    format!("{krate} depends on {target}, which the design forbids ({why})")
                } else {
                    format!(
                        "{krate} reaches {target} through {}, which the design forbids ({why})",
                        via.join(" -> ")
                    )
                });
            }
        }
    }

    violations.sort();
    violations.dedup();
    Ok(violations)
}

// ---------------------------------------------------------------------------
// Crates that build no SQLite.
// ---------------------------------------------------------------------------

/// Crates that must not build SQLite, each with the `cargo tree` flags that
/// select the features a project using it alone gets. `cargo metadata`
/// cannot say this: it unifies features over the whole workspace, where
/// api-server and cli turn orchestrator-core's `sqlite` on.
const NO_SQLITE: &[(&str, &[&str])] = &[
    // Reusable without the store: the token, the service, the pattern.
    ("orchestrator-core", &["--no-default-features"]),
    // The data, strategy and training layers keep no operations on disk.
    ("market-data", &[]),
    ("strategy", &[]),
    ("local-trainer", &[]),
];

/// The SQLite packages (`rusqlite`, `libsqlite3-sys`) among the lines of
/// `cargo tree --prefix none --format {p}` output.
fn sqlite_packages(tree: &str) -> Vec<&str> {
    let mut found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| matches!(*name, "rusqlite" | "libsqlite3-sys"))
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// `cargo tree -p KRATE -e normal` with `flags`, one package per line.
fn cargo_tree(root: &Path, krate: &str, flags: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .args(["-p", krate])
        .args(flags)
        .current_dir(root)
        .output()
        .expect("cargo tree could not be started");
    assert!(
        output.status.success(),
        "cargo tree -p {krate} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo tree printed UTF-8")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest directory has a parent")
        .to_path_buf()
}

fn cargo_metadata(root: &Path) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .current_dir(root)
        .output()
        .expect("cargo metadata could not be started");
    assert!(
        output.status.success(),
        "cargo metadata failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata printed invalid JSON")
}

// ---------------------------------------------------------------------------
// Source file checks.
// ---------------------------------------------------------------------------

// Built with `concat!` so this file does not trip its own check.
const IGNORE_ATTR: &str = concat!("#[", "ignore");
const SHOULD_PANIC_ATTR: &str = concat!("#[", "should_panic");

/// Every `.rs` file under `dir`, recursively, sorted; build output and hidden
/// directories (`target`, `.git`) are skipped.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file_type = entry
                .file_type()
                .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            if file_type.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    walk(&path, files);
                }
            } else if file_type.is_file() && name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

/// The folders whose modules must carry a `//!` doc.
fn module_doc_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(crates) = fs::read_dir(root.join("crates")) {
        for krate in crates.flatten() {
            for sub in ["src", "tests", "benches", "examples"] {
                dirs.push(krate.path().join(sub));
            }
        }
    }
    dirs.push(root.join("xtask/src"));
    dirs.push(root.join("tests"));
    dirs.push(root.join("fuzz/fuzz_targets"));
    dirs.sort();
    dirs
}

/// Generated code is exempt from the doc rule: a `generated` folder anywhere
/// below the workspace root, or a `*.generated.rs` file.
fn is_generated(relative: &Path) -> bool {
    relative.components().any(|c| c.as_os_str() == "generated")
        || relative
            .file_name()
            .is_some_and(|name| name.to_string_lossy().ends_with(".generated.rs"))
}

fn starts_with_module_doc(text: &str) -> bool {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| line.trim_start().starts_with("//!"))
}

/// `line:needle` for each forbidden test attribute in `text`.
fn forbidden_attributes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for needle in [IGNORE_ATTR, SHOULD_PANIC_ATTR] {
            if line.contains(needle) {
                found.push(format!("{}: {needle}", index + 1));
            }
        }
    }
    found
}

fn relative<'p>(root: &Path, path: &'p Path) -> &'p Path {
    path.strip_prefix(root).unwrap_or(path)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// The published crates: their README shows the crate-level doc's example
/// (both run as doctests; this keeps them the same).
const PUBLISHED: &[&str] = &["crates/progress", "crates/orchestrator-core"];

/// The first fenced code block of `lines`, each line trimmed, blank lines
/// dropped; `None` without one.
fn first_code_block<'t>(lines: impl Iterator<Item = &'t str>) -> Option<Vec<&'t str>> {
    let mut lines = lines.map(str::trim);
    lines.find(|line| line.starts_with("```"))?;
    let block: Vec<&str> = lines
        .take_while(|line| !line.starts_with("```"))
        .filter(|line| !line.is_empty())
        .collect();
    Some(block)
}

/// The example of a crate-level doc (the `//!` lines of `lib.rs`), lines
/// rustdoc hides (`# ...`) shown, as a README shows them.
fn crate_doc_example(lib_rs: &str) -> Option<Vec<&str>> {
    let doc = lib_rs
        .lines()
        .map_while(|line| line.trim_start().strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line));
    let block = first_code_block(doc)?;
    Some(
        block
            .into_iter()
            .map(|line| line.strip_prefix("# ").unwrap_or(line).trim())
            .filter(|line| !line.is_empty() && *line != "#")
            .collect(),
    )
}

/// The first Rust example of a README.
fn readme_example(readme: &str) -> Option<Vec<&str>> {
    let mut lines = readme.lines();
    lines.find(|line| line.trim() == "```rust")?;
    first_code_block(std::iter::once("```").chain(lines))
}

// ---------------------------------------------------------------------------
// The checks applied to this workspace.
// ---------------------------------------------------------------------------

#[test]
fn dependency_graph_follows_the_architecture() {
    let root = workspace_root();
    let metadata = cargo_metadata(&root);
    let graph = Graph::parse(&metadata).expect("cargo metadata has packages and a resolve graph");
    // Guards against a vacuous pass, e.g. metadata of the wrong workspace.
    assert!(
        graph.members.contains_key("xtask") && graph.members.contains_key("trdr-progress"),
        "unexpected workspace members: {:?}",
        graph.members.keys().collect::<Vec<_>>()
    );
    let violations = check_dependency_graph(&metadata).expect("metadata is complete");
    assert!(
        violations.is_empty(),
        "the dependency graph breaks ARCHITECTURE.md:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn crates_below_the_servers_build_no_sqlite() {
    let root = workspace_root();
    let mut offending = Vec::new();
    for (krate, flags) in NO_SQLITE {
        let tree = cargo_tree(&root, krate, flags);
        // Guards against a vacuous pass: the crate itself is listed first.
        assert!(
            tree.lines()
                .next()
                .is_some_and(|line| line.starts_with(krate)),
            "cargo tree -p {krate} listed something else:\n{tree}"
        );
        let found = sqlite_packages(&tree);
        if !found.is_empty() {
            offending.push(format!(
                "cargo tree -p {krate} -e normal {} lists {} (`cargo tree -p {krate} -i rusqlite` shows the edge)",
                flags.join(" "),
                found.join(", ")
            ));
        }
    }
    assert!(
        offending.is_empty(),
        "these crates must build no SQLite (orchestrator-core's `sqlite` feature is for \
         api-server and cli only):\n  {}",
        offending.join("\n  ")
    );
}

#[test]
fn published_readmes_show_the_crate_doc_example() {
    let root = workspace_root();
    for krate in PUBLISHED {
        let lib = read(&root.join(krate).join("src/lib.rs"));
        let readme = read(&root.join(krate).join("README.md"));
        let doc = crate_doc_example(&lib)
            .unwrap_or_else(|| panic!("{krate}/src/lib.rs: the crate doc has no example"));
        let shown = readme_example(&readme)
            .unwrap_or_else(|| panic!("{krate}/README.md has no ```rust example"));
        assert_eq!(
            shown, doc,
            "{krate}/README.md's example differs from the crate doc's in src/lib.rs \
             (indentation and blank lines aside, with its hidden `# ` lines shown); \
             copy the crate doc's example into the README"
        );
    }
}

#[test]
fn every_module_starts_with_a_doc_line() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for dir in module_doc_dirs(&root) {
        for file in rust_files(&dir) {
            let relative = relative(&root, &file);
            if !is_generated(relative) && !starts_with_module_doc(&read(&file)) {
                missing.push(relative.display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these files must start with a `//!` line saying what the module is for:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn no_test_is_ignored_or_expected_to_panic() {
    let root = workspace_root();
    let mut offending = Vec::new();
    for file in rust_files(&root) {
        for hit in forbidden_attributes(&read(&file)) {
            offending.push(format!("{}:{hit}", relative(&root, &file).display()));
        }
    }
    assert!(
        offending.is_empty(),
        "the house style forbids ignored and should-panic tests \
         (gate slow tests on an env var; assert on the error instead):\n  {}",
        offending.join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Unit tests of the checks, on synthetic input.
// ---------------------------------------------------------------------------

/// Builds `cargo metadata`-shaped JSON: `members` are workspace crates,
/// every other name in `edges` is an external package. An edge is
/// `(from, to, kind)` with kind `None` (normal), `Some("dev")` or
/// `Some("build")`.
fn fake_metadata(members: &[&str], edges: &[(&str, &str, Option<&str>)]) -> Value {
    let id = |name: &str| format!("{name} 1.0.0 (fake)");
    let mut names: Vec<&str> = members.to_vec();
    for &(from, to, _) in edges {
        names.extend([from, to]);
    }
    names.sort_unstable();
    names.dedup();

    let packages: Vec<Value> = names
        .iter()
        .map(|name| json!({ "name": name, "id": id(name) }))
        .collect();
    let nodes: Vec<Value> = names
        .iter()
        .map(|name| {
            let deps: Vec<Value> = edges
                .iter()
                .filter(|(from, _, _)| from == name)
                .map(|(_, to, kind)| {
                    json!({
                        "name": to.replace('-', "_"),
                        "pkg": id(to),
                        "dep_kinds": [{ "kind": kind, "target": null }],
                    })
                })
                .collect();
            json!({ "id": id(name), "deps": deps })
        })
        .collect();
    json!({
        "packages": packages,
        "workspace_members": members.iter().map(|m| id(m)).collect::<Vec<_>>(),
        "resolve": { "nodes": nodes, "root": null },
    })
}

const ALL_CRATES: &[&str] = &[
    "trdr-progress",
    "fuzz-corpus",
    "bench-support",
    "slurm",
    "orchestrator-core",
    "charts",
    "market-data",
    "strategy",
    "local-trainer",
    "rpc",
    "host-client",
    "host-service",
    "training-adapter",
    "training-manager",
    "api-server",
    "cli",
    "xtask",
];

/// A complete workspace that follows the design, with plausible externals.
const GOOD_EDGES: &[(&str, &str, Option<&str>)] = &[
    ("trdr-progress", "serde", None),
    ("trdr-progress", "serde_json", Some("dev")),
    ("trdr-progress", "expect-test", Some("dev")),
    ("serde", "serde_derive", None),
    ("orchestrator-core", "trdr-progress", None),
    ("orchestrator-core", "tokio", None),
    ("orchestrator-core", "tokio-util", None),
    ("orchestrator-core", "rusqlite", None),
    ("tokio-util", "tokio", None),
    ("tokio", "tokio-macros", None),
    ("market-data", "orchestrator-core", None),
    ("market-data", "trdr-progress", None),
    ("market-data", "csv", None),
    ("strategy", "market-data", None),
    ("strategy", "serde_yaml", None),
    ("local-trainer", "orchestrator-core", None),
    ("local-trainer", "trdr-progress", None),
    ("local-trainer", "strategy", None),
    ("local-trainer", "market-data", None),
    ("local-trainer", "burn", None),
    ("burn", "burn-core", None),
    ("burn-core", "burn-tensor", None),
    ("rpc", "orchestrator-core", None),
    ("rpc", "trdr-progress", None),
    ("rpc", "tonic", None),
    ("rpc", "prost", None),
    ("rpc", "tonic-prost-build", Some("build")),
    ("tonic", "tokio", None),
    ("tonic", "prost", None),
    ("host-client", "rpc", None),
    ("host-client", "orchestrator-core", None),
    ("host-client", "trdr-progress", None),
    ("host-client", "tonic", None),
    ("host-service", "rpc", None),
    ("host-service", "local-trainer", None),
    ("host-service", "market-data", None),
    ("host-service", "tonic", None),
    ("training-adapter", "local-trainer", None),
    ("training-adapter", "host-client", None),
    ("training-manager", "training-adapter", None),
    ("training-manager", "strategy", None),
    ("training-manager", "orchestrator-core", None),
    ("api-server", "rpc", None),
    ("api-server", "training-manager", None),
    ("api-server", "market-data", None),
    ("api-server", "tonic", None),
    ("cli", "api-server", None),
    ("cli", "host-service", None),
    ("cli", "orchestrator-core", None),
    ("cli", "tokio", None),
    ("xtask", "serde_json", Some("dev")),
];

/// The violations of the good workspace plus `extra` edges.
fn violations_with(extra: &[(&str, &str, Option<&str>)]) -> Vec<String> {
    violations_of(ALL_CRATES, extra)
}

fn violations_of(members: &[&str], extra: &[(&str, &str, Option<&str>)]) -> Vec<String> {
    let edges: Vec<_> = GOOD_EDGES.iter().chain(extra).copied().collect();
    check_dependency_graph(&fake_metadata(members, &edges)).expect("fake metadata is complete")
}

#[test]
fn a_workspace_that_follows_the_design_passes() {
    // training-adapter reaches tonic through host-client: an allowed edge.
    assert_eq!(violations_with(&[]), Vec::<String>::new());
}

#[test]
fn crates_not_yet_written_are_not_required() {
    let edges = [
        ("trdr-progress", "serde", None),
        ("orchestrator-core", "trdr-progress", None),
        ("orchestrator-core", "tokio", None),
    ];
    let metadata = fake_metadata(&["trdr-progress", "orchestrator-core", "xtask"], &edges);
    assert_eq!(check_dependency_graph(&metadata), Ok(vec![]));
}

#[test]
fn progress_must_not_depend_on_tokio() {
    assert_eq!(
        violations_with(&[("trdr-progress", "tokio", None)]),
        [
            "trdr-progress depends on tokio, which the design forbids (progress is pure: no tokio, no I/O)"
        ]
    );
}

#[test]
fn progress_must_not_reach_tokio_transitively() {
    assert_eq!(
        violations_with(&[
            ("trdr-progress", "async-thing", None),
            ("async-thing", "tokio-util", None)
        ]),
        [
            "trdr-progress depends on async-thing, which the design forbids (progress may use only serde)",
            "trdr-progress reaches tokio-util through async-thing, which the design forbids \
             (progress is pure: no tokio, no I/O)",
        ]
    );
}

#[test]
fn progress_may_use_only_serde() {
    assert_eq!(
        violations_with(&[("trdr-progress", "serde_json", None)]),
        [
            "trdr-progress depends on serde_json, which the design forbids (progress may use only serde)"
        ]
    );
}

#[test]
fn dev_and_build_dependencies_are_not_restricted() {
    assert_eq!(
        violations_with(&[
            ("trdr-progress", "tokio", Some("dev")),
            ("trdr-progress", "market-data", Some("dev")),
            ("strategy", "burn", Some("dev")),
            ("orchestrator-core", "prost-build", Some("build")),
        ]),
        Vec::<String>::new()
    );
}

#[test]
fn training_manager_must_not_reach_a_trainer_directly() {
    assert_eq!(
        violations_with(&[("training-manager", "local-trainer", None)]),
        [
            "training-manager depends on local-trainer, which the design forbids \
             (training-manager may depend on training-adapter, strategy, orchestrator-core, trdr-progress, market-data)"
        ]
    );
}

#[test]
fn progress_must_not_depend_on_any_workspace_crate() {
    assert_eq!(
        violations_with(&[("trdr-progress", "orchestrator-core", None)]),
        [
            "trdr-progress depends on orchestrator-core, which the design forbids \
             (trdr-progress may depend on no workspace crate)"
        ]
    );
}

#[test]
fn strategy_must_not_use_burn_even_transitively() {
    let direct = violations_with(&[("strategy", "burn-tensor", None)]);
    assert_eq!(
        direct,
        ["strategy depends on burn-tensor, which the design forbids \
             (only local-trainer and the crates above it may use burn)"]
    );
    let transitive = violations_with(&[("strategy", "ml-utils", None), ("ml-utils", "burn", None)]);
    assert_eq!(
        transitive,
        [
            "strategy reaches burn through ml-utils, which the design forbids \
             (only local-trainer and the crates above it may use burn)"
        ]
    );
    // Through a workspace crate it is the edge that is wrong.
    let internal = violations_with(&[("strategy", "local-trainer", None)]);
    assert_eq!(
        internal,
        [
            "strategy depends on local-trainer, which the design forbids (strategy may depend on market-data)"
        ]
    );
}

#[test]
fn core_crates_know_nothing_of_grpc() {
    assert_eq!(
        violations_with(&[
            ("orchestrator-core", "prost-types", None),
            ("market-data", "tonic", None),
        ]),
        [
            "market-data depends on tonic, which the design forbids \
             (only rpc, host-client, host-service and api-server may use tonic or prost)",
            "orchestrator-core depends on prost-types, which the design forbids \
             (only rpc, host-client, host-service and api-server may use tonic or prost)",
        ]
    );
}

#[test]
fn the_cli_dials_servers_only_through_host_client() {
    assert_eq!(
        violations_with(&[("cli", "host-client", None), ("cli", "tonic", None)]),
        ["cli depends on tonic, which the design forbids \
          (only rpc, host-client, host-service and api-server may use tonic or prost)"]
    );
}

#[test]
fn sqlite_is_found_in_cargo_tree_output() {
    let tree = "local-trainer v0.0.0 (/w/crates/local-trainer)\n\
                orchestrator-core v0.1.0 (/w/crates/orchestrator-core)\n\
                rusqlite v0.43.0\n\
                libsqlite3-sys v0.35.0\n\
                rusqlite v0.43.0 (*)\n\
                sqlite-utils v1.0.0\n";
    assert_eq!(sqlite_packages(tree), ["libsqlite3-sys", "rusqlite"]);
    assert_eq!(
        sqlite_packages("strategy v0.0.0 (/w/crates/strategy)\nserde v1.0.0\n"),
        Vec::<&str>::new()
    );
}

#[test]
fn a_readme_example_is_compared_with_the_crate_doc_shown_whole() {
    let lib = "//! What it is.\n//!\n//! ```\n//! use x::y;\n//!\n//! # fn main() {\n//! y();\n//! #\n//! # }\n//! ```\n\nmod a;\n";
    assert_eq!(
        crate_doc_example(lib),
        Some(vec!["use x::y;", "fn main() {", "y();", "}"])
    );
    let readme =
        "# x\n\n```toml\nx = \"1\"\n```\n\n```rust\nuse x::y;\n\nfn main() {\n    y();\n}\n```\n";
    assert_eq!(crate_doc_example(lib), readme_example(readme));
    assert_eq!(readme_example("no example\n"), None);
    assert_eq!(crate_doc_example("//! No example.\nfn f() {}\n"), None);
}

#[test]
fn family_names_match_whole_words() {
    let burn = &FAMILIES[0];
    assert!(burn.contains("burn") && burn.contains("burn-ndarray") && burn.contains("burn_core"));
    assert!(!burn.contains("burnish") && !burn.contains("sunburn"));
}

#[test]
fn a_crate_missing_from_the_table_fails() {
    let mut members = ALL_CRATES.to_vec();
    members.push("portfolio");
    let violations = violations_of(&members, &[("portfolio", "trdr-progress", None)]);
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with("workspace crate portfolio is missing from ALLOWED_EDGES")
            && violations[0].contains("add it to the table"),
        "{violations:?}"
    );
}

#[test]
fn metadata_without_a_resolve_graph_is_an_error() {
    let mut metadata = fake_metadata(&["trdr-progress"], &[]);
    metadata["resolve"] = Value::Null;
    assert!(check_dependency_graph(&metadata).is_err());
}

#[test]
fn the_table_is_consistent() {
    let names: Vec<&str> = ALLOWED_EDGES.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ALL_CRATES, "one entry per crate of ARCHITECTURE.md");
    for (krate, internal) in ALLOWED_EDGES {
        if let Internal::Only(deps) = internal {
            for dep in *deps {
                assert!(
                    names.contains(dep),
                    "{krate} may depend on unknown crate {dep}"
                );
                assert_ne!(krate, dep);
            }
        }
    }
    for family in FAMILIES {
        let (Scope::OnlyIn(crates) | Scope::NotIn(crates)) = family.scope;
        for krate in crates {
            assert!(
                names.contains(krate),
                "family {:?} names unknown crate {krate}",
                family.roots
            );
        }
    }
}

/// The design says a crate outside burn's (or tokio's) scope must not reach
/// it at all, but the graph check only follows external crates from each
/// member. That is enough only if no allowed edge leads from a crate outside
/// the scope to one inside it.
#[test]
fn internal_edges_never_lead_into_burn_or_tokio() {
    for family in FAMILIES.iter().filter(|f| f.roots != ["tonic", "prost"]) {
        for (krate, internal) in ALLOWED_EDGES {
            if family.allowed_in(krate) {
                continue;
            }
            let Internal::Only(deps) = internal else {
                panic!(
                    "{krate} may depend on anything but may not use {:?}",
                    family.roots
                );
            };
            for dep in *deps {
                assert!(
                    !family.allowed_in(dep),
                    "{krate} may depend on {dep}, which may use {:?}",
                    family.roots
                );
            }
        }
    }
}

#[test]
fn module_doc_is_the_first_non_blank_line() {
    assert!(starts_with_module_doc(
        "//! What this is for.\n\nuse std::fs;\n"
    ));
    assert!(starts_with_module_doc(
        "\n\n   //! Indented, after blank lines.\n"
    ));
    assert!(!starts_with_module_doc("use std::fs;\n//! Too late.\n"));
    assert!(!starts_with_module_doc(
        "// A plain comment.\n//! Then a doc.\n"
    ));
    assert!(!starts_with_module_doc("/// An item doc.\nfn f() {}\n"));
    assert!(!starts_with_module_doc(""));
}

#[test]
fn generated_code_is_exempt_from_the_doc_rule() {
    assert!(is_generated(Path::new(
        "crates/rpc/src/generated/trdr.v1.rs"
    )));
    assert!(is_generated(Path::new("crates/rpc/src/trdr.generated.rs")));
    assert!(!is_generated(Path::new("crates/rpc/src/lib.rs")));
    assert!(!is_generated(Path::new(
        "crates/rpc/src/generated_names.rs"
    )));
}

#[test]
fn ignored_and_should_panic_tests_are_found() {
    let text = format!(
        "#[test]\n{IGNORE_ATTR}]\nfn slow() {{}}\n\n#[test]\n{SHOULD_PANIC_ATTR}(expected = \"x\")]\nfn boom() {{}}\n"
    );
    assert_eq!(
        forbidden_attributes(&text),
        [
            format!("2: {IGNORE_ATTR}"),
            format!("6: {SHOULD_PANIC_ATTR}")
        ]
    );
    assert_eq!(
        forbidden_attributes("#[test]\nfn fine() {}\n"),
        Vec::<String>::new()
    );
}

#[test]
fn the_doc_check_covers_crates_and_xtask() {
    let root = workspace_root();
    let dirs = module_doc_dirs(&root);
    assert!(dirs.contains(&root.join("xtask/src")));
    assert!(dirs.contains(&root.join("crates/progress/src")));
    let files = rust_files(&root.join("xtask/src"));
    assert!(files.contains(&root.join("xtask/src/tidy.rs")), "{files:?}");
}

// ---------------------------------------------------------------------------
// Tests do not depend on the clock.
// ---------------------------------------------------------------------------

/// What in test code waits on or measures time: a sleep used to let
/// something happen, or an elapsed time asserted on. Tests wait for events
/// (channels, watch streams, a status) or run on tokio's paused clock; how
/// long things take is the benches' business (`cargo xtask bench`).
const CLOCK_PATTERNS: &[&str] = &["thread::sleep(", "time::sleep(", ".elapsed()"];

/// The places allowed to, `(file, text of the line)`, each with its reason.
const CLOCK_ALLOWED: &[(&str, &str)] = &[
    // A fake host that answers a cancel late (a trainer slow to reach its
    // next check), well within the client's window: the delay is the
    // behaviour under test, not a wait for something to happen.
    (
        "crates/host-client/src/training/tests.rs",
        "tokio::time::sleep(self.cancel_delay)",
    ),
    // Polling another process for a status, under a deadline that fails the
    // test: the test has no event stream of that process to wait on.
    ("crates/cli/tests/it/serve.rs", "std::thread::sleep("),
    ("crates/cli/tests/it/host.rs", "tokio::time::sleep("),
    (
        "crates/host-service/tests/it/main.rs",
        "tokio::time::sleep(",
    ),
    // Polling slurmctld for a job's state, under a deadline that fails the
    // test: Slurm has no event stream to wait on.
    ("crates/slurm/tests/it/main.rs", "tokio::time::sleep("),
];

/// Whether `relative` (to the workspace root) holds only test code: an
/// integration test, or a `tests.rs` module file.
fn is_test_file(relative: &Path) -> bool {
    let parts: Vec<_> = relative.components().map(|c| c.as_os_str()).collect();
    parts.get(2).is_some_and(|dir| *dir == "tests") || relative.ends_with("tests.rs")
}

/// The `(line number, line)`s of test code in a file: all of a test file,
/// else from an inline `#[cfg(test)]` module (the last item, by house
/// style) to the end. Comment lines are left out.
fn test_lines(relative: &Path, text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let start = if is_test_file(relative) {
        Some(0)
    } else {
        lines.windows(2).position(|pair| {
            pair[0].trim() == "#[cfg(test)]" && pair[1].trim_start().starts_with("mod tests {")
        })
    };
    let Some(start) = start else {
        return Vec::new();
    };
    lines
        .iter()
        .enumerate()
        .skip(start)
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(index, line)| (index + 1, (*line).to_owned()))
        .collect()
}

/// The clock-dependent lines of one file's test code not in `allowed`.
fn clock_dependence(relative: &Path, text: &str, allowed: &[(&str, &str)]) -> Vec<String> {
    test_lines(relative, text)
        .into_iter()
        .filter(|(_, line)| CLOCK_PATTERNS.iter().any(|pattern| line.contains(pattern)))
        .filter(|(_, line)| {
            !allowed
                .iter()
                .any(|(file, text)| relative == Path::new(file) && line.contains(text))
        })
        .map(|(number, line)| format!("{}:{number}: {}", relative.display(), line.trim()))
        .collect()
}

#[test]
fn tests_do_not_sleep_or_time_themselves() {
    let root = workspace_root();
    let mut offending = Vec::new();
    for file in rust_files(&root.join("crates")) {
        let relative = relative(&root, &file);
        offending.extend(clock_dependence(relative, &read(&file), CLOCK_ALLOWED));
    }
    assert!(
        offending.is_empty(),
        "tests wait for events or run on paused time (#[tokio::test(start_paused = true)]), \
         and leave timing claims to the benches; a sleep or an elapsed time here makes a \
         test depend on the machine (or add the place to CLOCK_ALLOWED with its reason):\n  {}",
        offending.join("\n  ")
    );
}

#[test]
fn clock_checks_cover_test_code_only_and_honour_the_allow_list() {
    let src = "//! A module.\nfn work() { std::thread::sleep(D); }\n\n#[cfg(test)]\nmod tests {\n    // sleep(...) in a comment\n    fn t() { let took = started.elapsed(); tokio::time::sleep(D); }\n}\n";
    assert_eq!(
        clock_dependence(Path::new("crates/a/src/lib.rs"), src, &[]),
        ["crates/a/src/lib.rs:7: fn t() { let took = started.elapsed(); tokio::time::sleep(D); }"]
    );
    let it = "fn t() {\n    std::thread::sleep(D);\n}\n";
    assert_eq!(
        clock_dependence(Path::new("crates/a/tests/it/main.rs"), it, &[]),
        ["crates/a/tests/it/main.rs:2: std::thread::sleep(D);"]
    );
    let allowed = [("crates/a/tests/it/main.rs", "std::thread::sleep(")];
    assert!(clock_dependence(Path::new("crates/a/tests/it/main.rs"), it, &allowed).is_empty());
    assert!(
        clock_dependence(
            Path::new("crates/a/src/lib.rs"),
            "fn f() { x.elapsed(); }\n",
            &[]
        )
        .is_empty()
    );
    assert_eq!(
        clock_dependence(Path::new("crates/a/src/x/tests.rs"), it, &[]).len(),
        1
    );
}
