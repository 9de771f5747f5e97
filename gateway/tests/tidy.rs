//! Tidy: the source tree keeps its shape.
//!
//! - **Layers.** ARCHITECTURE.md's "Layers" table puts every top-level module
//!   of `gateway/src` in one layer; a module may name (`use crate::…` or any
//!   other `crate::` path, tests included) only modules of lower layers. The
//!   table is read from ARCHITECTURE.md itself, so the document and this
//!   check cannot disagree: a new module is placed by adding it to the table.
//! - **Module docs.** Every `.rs` file of the workspace opens with `//!`.
//! - **Code map.** `gateway/src/lib.rs`'s doc comment links every `pub mod`
//!   exactly once, and nothing else at the top level.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn gateway_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn workspace_dir() -> PathBuf {
    gateway_dir()
        .parent()
        .expect("the gateway crate sits in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, skipping build output and hidden folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The layer table of ARCHITECTURE.md: module → (layer number, layer row).
/// Rows look like ``| 3 | `store` | … |``; the first cell is the number,
/// the second lists the modules in backticks.
fn layer_table() -> BTreeMap<String, u32> {
    let text = read(&workspace_dir().join("ARCHITECTURE.md"));
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let mut layers = BTreeMap::new();
    for line in section.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(number), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        for module in modules.split('`').skip(1).step_by(2) {
            let previous = layers.insert(module.to_owned(), number);
            assert!(
                previous.is_none(),
                "ARCHITECTURE.md puts `{module}` in two layers"
            );
        }
    }
    assert!(!layers.is_empty(), "the Layers table has no rows");
    layers
}

/// The top-level modules declared in `lib.rs`, and whether each is `pub`.
fn declared_modules(lib: &str) -> BTreeMap<String, bool> {
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (public, rest) = match line.strip_prefix("pub mod ") {
                Some(rest) => (true, rest),
                None => (false, line.strip_prefix("mod ")?),
            };
            Some((rest.strip_suffix(';')?.trim().to_owned(), public))
        })
        .collect()
}

/// The files of one top-level module: `name.rs` and everything under `name/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let dir = src.join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    files
}

/// Removes `//` comments (doc comments included), so a module may *mention*
/// another in prose; only code counts as an edge.
fn strip_comments(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules a piece of code names after `crate::`: a path
/// (`crate::store::Store`) or a group (`crate::{clock, devices::X}`),
/// with the 1-based line of each.
fn crate_edges(text: &str) -> Vec<(usize, String)> {
    let code: String = text
        .lines()
        .map(strip_comments)
        .collect::<Vec<_>>()
        .join("\n");
    let mut edges = Vec::new();
    let mut rest = code.as_str();
    let mut offset = 0;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let after = &rest[at + "crate::".len()..];
        let line = code[..offset + at].matches('\n').count() + 1;
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                // Top-level items of the group, up to its closing brace.
                let mut depth = 0usize;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if c.is_whitespace() => {}
                        _ if item_start && depth == 0 => {
                            item_start = false;
                            let name = ident_at(&group[i..]);
                            if !name.is_empty() {
                                edges.push((line, name.to_owned()));
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident_at(after);
                if !name.is_empty() {
                    edges.push((line, name.to_owned()));
                }
            }
        }
        let advance = at + "crate::".len();
        offset += advance;
        rest = &rest[advance..];
    }
    edges
}

#[test]
fn every_import_between_top_level_modules_follows_the_layer_order() {
    let src = gateway_dir().join("src");
    let layers = layer_table();
    let modules = declared_modules(&read(&src.join("lib.rs")));

    let mut problems = Vec::new();
    for module in modules.keys() {
        if !layers.contains_key(module) {
            problems.push(format!(
                "`{module}` is in no layer: add it to the Layers table in ARCHITECTURE.md"
            ));
        }
    }
    for module in layers.keys() {
        if !modules.contains_key(module) {
            problems.push(format!(
                "ARCHITECTURE.md's Layers table names `{module}`, which lib.rs does not declare"
            ));
        }
    }

    let mut edges = 0;
    for (module, layer) in &layers {
        for file in module_files(&src, module) {
            for (line, target) in crate_edges(&read(&file)) {
                if &target == module {
                    continue;
                }
                let Some(target_layer) = layers.get(&target) else {
                    continue; // a crate-level item, or a module reported above
                };
                edges += 1;
                if target_layer >= layer {
                    let shown = file.strip_prefix(workspace_dir()).unwrap_or(&file);
                    problems.push(format!(
                        "{}:{line}: `{module}` (layer {layer}) uses `{target}` (layer {target_layer}); \
                         a module may use only lower layers (ARCHITECTURE.md, Layers)",
                        shown.display()
                    ));
                }
            }
        }
    }
    assert!(edges > 0, "no `crate::` edges found: the scanner is broken");
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace_dir(), &mut files);
    assert!(files.len() > 50, "only {} files found", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !read(f).starts_with("//!"))
        .map(|f| {
            f.strip_prefix(workspace_dir())
                .unwrap_or(f)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not open with a `//!` saying what they own:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_code_map_in_lib_rs_lists_every_public_module_once() {
    let lib = read(&gateway_dir().join("src/lib.rs"));
    let docs: String = lib
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let public: BTreeSet<String> = declared_modules(&lib)
        .into_iter()
        .filter_map(|(name, public)| public.then_some(name))
        .collect();
    let mut problems = Vec::new();
    for module in &public {
        let count = docs.matches(&format!("[`{module}`]")).count();
        if count != 1 {
            problems.push(format!(
                "the code map lists `{module}` {count} times (it must be once)"
            ));
        }
    }
    for link in docs.split("[`").skip(1) {
        let name = link.split('`').next().unwrap_or("");
        if !name.contains("::") && !public.contains(name) {
            problems.push(format!(
                "the code map lists `{name}`, which is not a `pub mod`"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_edge_scanner_reads_paths_and_groups_but_not_comments() {
    let text = "use crate::store::Store;\n\
                // crate::web in a comment\n\
                use crate::{clock, devices::{A, B}, vocab};\n\
                let x = crate::metrics::X; // crate::app\n\
                let s = \"https://example\"; crate::tasks::f();\n";
    let found: Vec<(usize, String)> = crate_edges(text);
    let expected: Vec<(usize, String)> = [
        (1, "store"),
        (3, "clock"),
        (3, "devices"),
        (3, "vocab"),
        (4, "metrics"),
        (5, "tasks"),
    ]
    .into_iter()
    .map(|(l, n)| (l, n.to_owned()))
    .collect();
    assert_eq!(found, expected);
}
