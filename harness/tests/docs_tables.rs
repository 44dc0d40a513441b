//! The tables in the docs that list the faults, the strategies and the
//! backup methods name exactly what the code has: a fault, strategy or
//! backup method added without its row, or a row left behind by one
//! removed or renamed, fails here with the page, the table and the names.

use crashlab::faults::Fault;
use crashlab::storage::Strategy;
use std::collections::BTreeSet;
use std::path::Path;

fn read(page: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(page);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The section of `text` under `heading` (a whole heading line), to the
/// next heading of the same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no `{heading}` section")) + 1;
    let body = &text[start + heading.len()..];
    let end = body
        .lines()
        .scan(0, |offset, line| {
            let at = *offset;
            *offset += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| {
            let hashes = line.chars().take_while(|&c| c == '#').count();
            hashes > 0 && hashes <= level && line[hashes..].starts_with(' ')
        })
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

/// The names in backticks that open the first column of every row of the
/// Markdown tables in `text` (`| \`host-loss\` on …` gives `host-loss`).
fn first_column_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The names in the first column of the tables in `text`, with or without
/// backticks, header and rule rows aside.
fn plain_first_column(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|rest| rest.split('|').next())
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .filter(|cell| !cell.is_empty() && !cell.starts_with('-'))
        .collect()
}

fn assert_same(page: &str, table: &str, listed: &BTreeSet<String>, code: &BTreeSet<String>) {
    let missing: Vec<&String> = code.difference(listed).collect();
    let unknown: Vec<&String> = listed.difference(code).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{page}, {table}: rows missing for {missing:?}; rows for names the code does not have: {unknown:?}"
    );
}

fn faults() -> BTreeSet<String> {
    Fault::ALL.iter().map(|f| f.as_str().to_owned()).collect()
}

fn backup_strategies() -> BTreeSet<String> {
    Strategy::ALL.iter().filter(|s| s.def().backup.is_some()).map(|s| s.as_str().to_owned()).collect()
}

#[test]
fn the_fault_tables_list_every_fault_and_no_other() {
    let design = read("docs/design.md");
    let listed = first_column_names(section(&design, "## The fault model"));
    assert_same("docs/design.md", "the fault model", &listed, &faults());

    let scenarios = read("docs/scenarios.md");
    let listed = first_column_names(section(&scenarios, "## Faults"));
    assert_same("docs/scenarios.md", "Faults", &listed, &faults());

    let module = read("harness/src/faults/mod.rs");
    let docs: String =
        module.lines().filter_map(|l| l.strip_prefix("//! ")).collect::<Vec<_>>().join("\n");
    assert_same("harness/src/faults/mod.rs", "the module docs' table", &first_column_names(&docs), &faults());
}

#[test]
fn the_backup_model_lists_every_backup_strategy_and_no_other() {
    let design = read("docs/design.md");
    let listed = first_column_names(section(&design, "## The backup model"));
    assert_same("docs/design.md", "the backup model", &listed, &backup_strategies());
}

#[test]
fn the_durability_table_names_only_strategies_and_faults_the_code_has() {
    let design = read("docs/design.md");
    let table = section(&design, "## The durability table");
    let strategies: BTreeSet<String> = Strategy::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let rows = plain_first_column(table);
    let header: BTreeSet<String> = table
        .lines()
        .find(|l| l.starts_with("| strategy |"))
        .expect("the durability table has a `strategy` header")
        .split('|')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty() && c != "strategy")
        .collect();
    let unknown_rows: Vec<&String> = rows.iter().filter(|r| *r != "strategy" && !strategies.contains(*r)).collect();
    assert!(unknown_rows.is_empty(), "docs/design.md's durability table has rows for no strategy: {unknown_rows:?}");
    let unknown_faults: Vec<&String> = header.difference(&faults()).collect();
    assert!(unknown_faults.is_empty(), "docs/design.md's durability table has columns for no fault: {unknown_faults:?}");
}

#[test]
fn the_reader_takes_the_first_column_of_a_table() {
    let text = "| fault | what |\n|---|---|\n| `a` | x |\n| `b` on `c` | y |\nnot a row `d`\n";
    assert_eq!(first_column_names(text), BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    assert_eq!(plain_first_column(text), BTreeSet::from(["fault".to_owned(), "a".to_owned(), "b".to_owned()]));
}
