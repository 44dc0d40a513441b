//! The layers of the engine import one way, and no crate of the workspace
//! has an import circle among its modules.
//!
//! `harness/src`'s top-level modules sit in the layers of [`LAYERS`],
//! bottom up; a module may import its own layer's modules and those below,
//! never those above. The test reads every `crate::…` path in the code of
//! every file (comments and strings aside), so a `use` and an inline path
//! count alike. `docs/design.md` lists the same layers; the test checks
//! that too, so the page cannot drift from the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `harness/src`'s layers, bottom up, each with its top-level modules.
const LAYERS: &[(&str, &[&str])] = &[
    ("text", &["text"]),
    ("checker", &["checker"]),
    ("run identity and journal", &["run"]),
    ("settings", &["settings"]),
    ("the Docker door", &["docker"]),
    ("images", &["images"]),
    ("storage", &["storage"]),
    ("cleanup", &["cleanup"]),
    ("deploy", &["deploy"]),
    ("workload", &["workload"]),
    ("backup, explore", &["backup", "explore", "replay"]),
    ("faults", &["faults"]),
    ("scenario", &["scenario", "compose"]),
    ("events", &["events"]),
    ("cycle", &["cycle"]),
    ("report", &["report"]),
    ("bench", &["bench"]),
    ("volume driver", &["plugin"]),
    ("CLI", &["app"]),
];

/// Files that are the crate's root, not a module of it.
const ROOTS: &[&str] = &["lib.rs", "main.rs"];

/// One `crate::<module>` path found in a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    file: PathBuf,
    line: usize,
    to: String,
}

/// The Rust files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `source` with comments and the contents of string and char literals
/// blanked out (newlines kept, so line numbers hold).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&chars, i) {
            i = skip_raw_string(&chars, i, &mut out);
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            out.push_str("' '");
            i += if next == Some('\\') { chars[i + 2..].iter().position(|&c| c == '\'').unwrap() + 3 } else { 3 };
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Skips `r#"…"#` starting at `i`, blanking it into `out`.
fn skip_raw_string(chars: &[char], mut i: usize, out: &mut String) -> usize {
    let start = i;
    i += 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        out.extend(&chars[start..i]);
        return i;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
            return i + 1 + hashes;
        }
        out.push(if chars[i] == '\n' { '\n' } else { ' ' });
        i += 1;
    }
    i
}

/// Whether the `'` at `i` opens a char literal rather than a lifetime.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!((chars.get(i + 1), chars.get(i + 2)), (Some('\\'), _) | (Some(_), Some('\'')))
}

/// `code` with every `#[cfg(test)]` item blanked out (newlines kept): a
/// unit test may build its inputs with a higher layer's help without the
/// engine depending on it.
fn without_tests(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]") {
        let start = from + at;
        let Some(open) = out[start..].find('{').map(|o| start + o) else { break };
        let mut depth = 0;
        let mut end = open;
        for (k, c) in out[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = open + k + 1;
                break;
            }
        }
        let blanked: String = out[start..end].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
        out.replace_range(start..end, &blanked);
        from = end;
    }
    out
}

/// Every `crate::<module>` in `code`, with grouped imports
/// (`use crate::{a::x, b}`) opened, as (line, module).
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let line_of = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        if start > 0 && code[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut at_item_start = true;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => at_item_start = true,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if at_item_start && (c.is_alphabetic() || c == '_') {
                    at_item_start = false;
                    let name: String = group[k..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    out.push((line_of(from + 1 + k), name));
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.push((line_of(start), name));
            }
        }
    }
    out
}

/// A file's top-level module under `src`: `storage` for
/// `storage/btrfs.rs` and `storage.rs`, `None` for the crate root.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    if rel.components().count() == 1 && ROOTS.contains(&first.as_str()) {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_owned())
}

/// Every file's imports of other top-level modules of its crate, as
/// (from module, import).
fn imports(src: &Path) -> Vec<(String, Import)> {
    let mut out = vec![];
    for file in rust_files(src) {
        let Some(from) = top_module(src, &file) else { continue };
        let code = without_tests(&code_only(&std::fs::read_to_string(&file).unwrap()));
        for (line, to) in crate_paths(&code) {
            if to != from {
                out.push((from.clone(), Import { file: file.clone(), line, to }));
            }
        }
    }
    out
}

/// The import circles among a crate's top-level modules, each as the
/// modules in it.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's strongly connected components; a component of more than one
    // module is a circle.
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = vec![];
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        out: vec![],
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module)).map(|i| (i, LAYERS[i].0))
}

#[test]
fn harness_layers_import_only_downwards() {
    let src = workspace().join("harness/src");
    let mut problems = vec![];
    let mut unplaced = BTreeSet::new();
    for (from, import) in imports(&src) {
        let Some((from_layer, from_name)) = layer_of(&from) else {
            unplaced.insert(from);
            continue;
        };
        let Some((to_layer, to_name)) = layer_of(&import.to) else {
            unplaced.insert(import.to.clone());
            continue;
        };
        if to_layer > from_layer {
            problems.push(format!(
                "{}:{}: `{from}` (layer {from_name}) imports `crate::{}` (layer {to_name}, above it)",
                import.file.strip_prefix(workspace()).unwrap().display(),
                import.line,
                import.to,
            ));
        }
    }
    for module in &unplaced {
        problems.push(format!("module `{module}` is in no layer: add it to LAYERS and to docs/design.md's layers"));
    }
    assert!(problems.is_empty(), "imports against the layer order:\n{}", problems.join("\n"));
}

#[test]
fn no_crate_of_the_workspace_has_an_import_circle_among_its_modules() {
    let mut problems = vec![];
    for krate in
        ["harness/src", "harness/faultfs/src", "workloads/src", "workloads/agent/src", "reports/src", "benches/src"]
    {
        let src = workspace().join(krate);
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut first: BTreeMap<(String, String), Import> = BTreeMap::new();
        for (from, import) in imports(&src) {
            edges.entry(from.clone()).or_default().insert(import.to.clone());
            first.entry((from, import.to.clone())).or_insert(import);
        }
        for circle in circles(&edges) {
            let evidence: Vec<String> = circle
                .iter()
                .flat_map(|a| circle.iter().map(move |b| (a.clone(), b.clone())))
                .filter_map(|key| first.get(&key))
                .map(|i| {
                    format!("  {}:{} uses crate::{}", i.file.strip_prefix(workspace()).unwrap().display(), i.line, i.to)
                })
                .collect();
            problems.push(format!("{krate}: {} import one another:\n{}", circle.join(", "), evidence.join("\n")));
        }
    }
    assert!(problems.is_empty(), "import circles:\n{}", problems.join("\n"));
}

#[test]
fn the_design_page_lists_the_layers_of_the_code() {
    let design = std::fs::read_to_string(workspace().join("docs/design.md")).unwrap();
    let section = design
        .split("\n## Layers\n")
        .nth(1)
        .expect("docs/design.md has a `## Layers` section")
        .split("\n## ")
        .next()
        .unwrap();
    let listed: Vec<String> = section
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(|c: char| c.is_ascii_digit()))
        .map(|l| l.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start_matches(". ").to_owned())
        .collect();
    let expected: Vec<String> = LAYERS
        .iter()
        .map(|(name, modules)| {
            let modules: Vec<String> = modules.iter().map(|m| format!("`{m}`")).collect();
            format!("{name}: {}", modules.join(", "))
        })
        .collect();
    let listed_heads: Vec<&str> = listed.iter().map(|l| l.split(" — ").next().unwrap_or(l).trim()).collect();
    assert_eq!(listed_heads, expected, "docs/design.md's layers, bottom up, as `N. name: `modules` — what it holds`");
}

#[test]
fn the_reader_finds_grouped_and_inline_paths_but_not_comments_or_strings() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n// crate::f\nlet s = \"crate::g\";\nlet t = crate::h::y();\n/* crate::i */ \
         let r = r#\"crate::j\"#; let c = '\"'; use crate::k;",
    );
    let found: Vec<String> = crate_paths(&code).into_iter().map(|(_, m)| m).collect();
    assert_eq!(found, ["a", "b", "c", "h", "k"]);
}

#[test]
fn a_circle_is_found_and_a_chain_is_not() {
    let edges = |pairs: &[(&str, &str)]| {
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            m.entry((*a).into()).or_default().insert((*b).into());
        }
        m
    };
    assert!(circles(&edges(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(circles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), [["a", "b", "c"]]);
}
