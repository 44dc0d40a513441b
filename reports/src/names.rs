//! How the report's sections name cells and order them, shared by the
//! Markdown sections.

use crate::CellReport;

/// How a section's rows name their cells: the strategy, after the
/// workload when `cells` are of more than one workload.
pub(crate) fn strategy_names(cells: &[&CellReport]) -> impl Fn(&CellReport) -> String + use<> {
    let several = distinct(cells.iter().map(|c| c.workload.as_str())).len() > 1;
    move |c| if several { format!("{} / {}", c.workload, c.strategy) } else { c.strategy.clone() }
}

/// Distinct values in first-seen order, so tables follow the scenario's
/// order rather than the alphabet.
pub(crate) fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}
