//! Crash points inside the load, on the real daemon: the fault filesystem
//! captures a crash point when a matching fsync-family call arrives, before
//! it takes effect, so the data pages the call was about to make durable
//! are still unsynced there and can be torn. A torn data page is what the
//! engines' own protections exist for: InnoDB's doublewrite buffer and
//! PostgreSQL's full-page writes. With the protection off some explored
//! state must fail; with it on, none may. Each test is named after the
//! property it checks.

mod common;

use crashlab_reports::{CellReport, PointReport, Verdict};

async fn points_cell(kind: &str, args: &str, load: &str, explore: &str) -> CellReport {
    let text = common::scenario(kind, args, r#""bind-mount""#, r#""crash-states""#, 1, explore).replacen(
        "load = \"1500ms\"",
        &format!("load = \"{load}\""),
        1,
    );
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells.into_iter().next().expect("one cell")
}

/// The points of the cell's one cycle, each explored without error.
fn points(cell: &CellReport) -> &[PointReport] {
    let cycle = &cell.cycle_details[0];
    assert!(cycle.fired.as_ref().is_some_and(|f| f.fired), "{cycle:?}");
    let explore = cycle.explore.as_ref().unwrap_or_else(|| panic!("the cycle explored nothing: {cycle:?}"));
    assert!(!explore.points.is_empty(), "{explore:?}");
    for p in &explore.points {
        assert!(p.error.is_none(), "{p:?}");
        assert!(p.ops > 0 && !p.states.is_empty(), "{p:?}");
    }
    &explore.points
}

fn torn_states(points: &[PointReport]) -> usize {
    points.iter().flat_map(|p| &p.states).filter(|s| s.id.starts_with('t')).count()
}

/// Whether some point's history held unsynced page-sized writes, so that
/// its torn states could tear a data page.
fn had_page_writes(points: &[PointReport], page: u64) -> bool {
    points.iter().any(|p| p.bytes >= page)
}

/// InnoDB writes a batch of data pages and then fsyncs the data files; a
/// point at an `.ibd` file's fsync holds the batch unsynced. Without the
/// doublewrite buffer a page torn at a sector boundary cannot be repaired
/// (the server refuses to start: "Unable to apply log to corrupted page");
/// with it, recovery restores the page from its doublewrite copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about 6 minutes here (353 s for the pair on the shared 2-core machine, load average 8-10): run with \
            --ignored; docs/crash-states.md has the measured runs"]
async fn mariadb_without_doublewrite_has_a_corrupt_torn_page_state_and_with_it_none() {
    if common::skip_docker() {
        return;
    }
    let explore = "[explore]\npoints = \"fsync:*.ibd\"\nspread = \"first\"\nmax-points = 2\nmax-states = 8\nk = 0\n";
    let flush = r#""--innodb-flush-log-at-trx-commit=1", "--innodb-max-dirty-pages-pct=0""#;

    let off = points_cell("mariadb", &format!(r#"{flush}, "--innodb-doublewrite=0""#), "3s", explore).await;
    let p = points(&off);
    assert!(had_page_writes(p, 16 << 10) && torn_states(p) > 0, "{p:?}");
    let failure = p.iter().find_map(|p| p.first_failure.as_ref()).unwrap_or_else(|| panic!("no state failed: {p:?}"));
    assert_eq!(failure.verdict, Verdict::Corrupt, "{failure:?}");
    assert!(failure.id.starts_with('t') && failure.dropped.contains("tears"), "a torn write: {failure:?}");
    assert_eq!(off.verdict, Verdict::Corrupt);

    let on = points_cell("mariadb", flush, "3s", explore).await;
    let p = points(&on);
    assert!(had_page_writes(p, 16 << 10) && torn_states(p) > 0, "{p:?}");
    assert!(p.iter().all(|p| p.failed() == 0), "{p:?}");
    assert_eq!(on.verdict, Verdict::Intact, "{:?}", on.cycle_details);
}

/// PostgreSQL writes evicted data pages (a tiny `shared_buffers` makes the
/// load evict) and syncs them only at a checkpoint, so a point at a WAL
/// fsync holds them unsynced. With `full_page_writes=off` a torn page
/// fails its checksum when WAL replay reads it ("invalid page in block"),
/// and the server does not start; with it on, replay starts from the full
/// page image logged at the page's first change after the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "several minutes here (each PostgreSQL state takes 5-15 s to check on the shared 2-core machine): run \
            with --ignored; docs/crash-states.md has the measured runs"]
async fn postgres_without_full_page_writes_has_a_corrupt_torn_page_state_and_with_it_none() {
    if common::skip_docker() {
        return;
    }
    // Not every torn page fails: a page whose replay starts with an
    // init-page record is rebuilt, and one no record touches (hint bits,
    // catalogs) is never read. Twelve states, six of them torn at one
    // split each, spread over the point's writes.
    let explore = "[explore]\npoints = \"fsync\"\nspread = \"first\"\nmax-points = 1\npoint-every = 5\nmax-states = 12\nk = 0\ntorn-splits = 1\n";
    let args = |fpw: &str| {
        format!(r#""-c", "synchronous_commit=on", "-c", "full_page_writes={fpw}", "-c", "shared_buffers=256kB""#)
    };

    let off = points_cell("postgres", &args("off"), "2s", explore).await;
    let p = points(&off);
    assert!(had_page_writes(p, 8 << 10) && torn_states(p) > 0, "{p:?}");
    let failure = p.iter().find_map(|p| p.first_failure.as_ref()).unwrap_or_else(|| panic!("no state failed: {p:?}"));
    assert_eq!(failure.verdict, Verdict::Corrupt, "{failure:?}");
    assert!(failure.id.starts_with('t') && failure.dropped.contains("tears"), "a torn write: {failure:?}");

    let on = points_cell("postgres", &args("on"), "2s", explore).await;
    let p = points(&on);
    assert!(had_page_writes(p, 8 << 10) && torn_states(p) > 0, "{p:?}");
    assert!(p.iter().all(|p| p.failed() == 0), "{p:?}");
    assert_eq!(on.verdict, Verdict::Intact, "{:?}", on.cycle_details);
}
