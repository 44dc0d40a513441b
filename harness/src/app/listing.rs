//! `crashlab list`: the cells a scenario plans, as a run would take them
//! (after `--filter`), with their expectations, and the pairs that are
//! `n/a` with the reason. Nothing is run and the daemon is not asked.

use crate::app::{AppError, exit};
use crate::report::json_events::{JsonEvents, Line, MessageFormat};
use crate::scenario::cell_id;
use crate::scenario::filter::Filter;
use crate::scenario::{Cell, Scenario};
use crashlab_reports::Unsupported;
use std::io::Write;
use std::path::Path;

/// `crashlab list [SCENARIO] [--filter F]`: prints the plan of the
/// scenario (the built-in smoke scenario when none is given) to stdout.
/// A filter that selects no cell is an error, as it is for `run`.
pub fn list(path: Option<&Path>, filter: Option<Filter>, format: MessageFormat) -> Result<i32, AppError> {
    let mut scenario = match path {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse(crate::scenario::SMOKE, "scenarios/smoke.toml (built in)")?,
    };
    scenario.filter = filter;
    let (cells, unsupported) = scenario.plan();
    if let Some(filter) = &scenario.filter
        && cells.is_empty()
        && unsupported.is_empty()
    {
        return Err(AppError::NothingSelected { scenario: scenario.name.clone(), filter: filter.to_string() });
    }
    let mut out = std::io::stdout().lock();
    // A closed stdout (`crashlab list | head`) is not an error of the plan.
    let _ = match format {
        MessageFormat::Human => out.write_all(render(&scenario, &cells, &unsupported).as_bytes()),
        MessageFormat::Json => {
            let mut json = JsonEvents::new(out, scenario.workload.kind.as_str());
            emit(&mut json, &scenario, &cells, &unsupported);
            Ok(())
        }
    };
    Ok(exit::PASS)
}

/// The plan as a table for people.
pub fn render(scenario: &Scenario, cells: &[Cell], unsupported: &[Unsupported]) -> String {
    let ids: Vec<String> = cells.iter().map(|c| cell_id(scenario, c)).collect();
    let width = ids.iter().map(String::len).max().unwrap_or(0).max("CELL".len());
    let mut text = format!(
        "scenario {} (seed {}): {} cells × {} cycles{}{}\n",
        scenario.name,
        scenario.seed,
        cells.len(),
        scenario.matrix.cycles,
        if unsupported.is_empty() { String::new() } else { format!(", {} n/a", unsupported.len()) },
        scenario.filter.as_ref().map_or(String::new(), |f| format!(", filter `{f}`")),
    );
    if !cells.is_empty() {
        text.push_str(&format!("\n{:width$}  EXPECTED\n", "CELL"));
    }
    for (id, cell) in ids.iter().zip(cells) {
        text.push_str(&format!("{id:width$}  {}\n", cell.expected));
    }
    if !unsupported.is_empty() {
        text.push_str("\nn/a:\n");
    }
    for u in unsupported {
        let id = crashlab_reports::partition::cell_id(&u.workload, &u.strategy, &u.fault);
        text.push_str(&format!("{id}: {}\n", u.reason));
    }
    text
}

/// The plan as `planned` and `not-applicable` lines.
pub fn emit<W: Write>(json: &mut JsonEvents<W>, scenario: &Scenario, cells: &[Cell], unsupported: &[Unsupported]) {
    let workload = scenario.workload.kind.as_str();
    for cell in cells {
        json.emit(&Line::Planned {
            cell: cell_id(scenario, cell),
            index: cell.index,
            workload,
            strategy: cell.strategy.as_str(),
            fault: &cell.fault_name(),
            cycles: scenario.matrix.cycles,
            expected: cell.expected,
        });
    }
    for u in unsupported {
        json.emit(&Line::NotApplicable {
            cell: crashlab_reports::partition::cell_id(&u.workload, &u.strategy, &u.fault),
            workload: &u.workload,
            strategy: &u.strategy,
            fault: &u.fault,
            reason: &u.reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(filter: Option<&str>) -> (Scenario, Vec<Cell>, Vec<Unsupported>) {
        let mut scenario = Scenario::parse(
            "name = \"l\"\nseed = 7\n[workload]\nkind = \"mariadb\"\n[matrix]\n\
             strategies = [\"bind-mount\", \"tmpfs\", \"container-layer\"]\nfaults = [\"restart\", \"host-kill\"]\ncycles = 3\n\
             [[expect]]\nstrategy = \"tmpfs\"\nfault = \"*\"\nverdict = \"data-gone\"\n",
            "test",
        )
        .unwrap();
        scenario.filter = filter.map(|f| f.parse().unwrap());
        let (cells, unsupported) = scenario.plan();
        (scenario, cells, unsupported)
    }

    #[test]
    fn the_table_lists_cells_with_expectations_and_na_pairs_with_reasons() {
        let (scenario, cells, unsupported) = planned(None);
        insta::assert_snapshot!(render(&scenario, &cells, &unsupported));
    }

    #[test]
    fn a_filter_leaves_out_what_it_does_not_select_from_both_lists() {
        let (scenario, cells, unsupported) = planned(Some("fault=host-kill"));
        let text = render(&scenario, &cells, &unsupported);
        assert!(
            text.starts_with("scenario l (seed 7): 2 cells × 3 cycles, 1 n/a, filter `fault=host-kill`\n"),
            "{text}"
        );
        assert!(!text.contains("restart"), "{text}");
        assert!(text.contains("mariadb/bind-mount/host-kill  intact\n"), "{text}");
        assert!(text.lines().any(|l| l.split_whitespace().eq(["mariadb/tmpfs/host-kill", "data-gone"])), "{text}");
        assert!(text.contains("\nn/a:\nmariadb/container-layer/host-kill: "), "{text}");
    }

    #[test]
    fn json_lines_name_each_cell_with_its_index_and_expectation() {
        let (scenario, cells, unsupported) =
            planned(Some("strategy=container-layer or (strategy=tmpfs and fault=restart)"));
        let mut json = JsonEvents::new(Vec::new(), "mariadb");
        emit(&mut json, &scenario, &cells, &unsupported);
        let text = String::from_utf8(json.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let summary: Vec<(String, String, String)> = lines
            .iter()
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap_or_default().to_owned();
                (s("type"), s("cell"), s("expected"))
            })
            .collect();
        let row = |t: &str, c: &str, e: &str| (t.to_owned(), c.to_owned(), e.to_owned());
        assert_eq!(
            summary,
            [
                row("planned", "mariadb/tmpfs/restart", "data-gone"),
                row("planned", "mariadb/container-layer/restart", "intact"),
                row("not-applicable", "mariadb/container-layer/host-kill", ""),
            ]
        );
        assert_eq!(lines[1]["index"], 4);
        assert_eq!(lines[0]["cycles"], 3);
        assert!(lines[2]["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(lines.iter().all(|l| l["schema"] == 1));
    }
}
