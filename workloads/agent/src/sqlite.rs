//! SQLite hosted by the agent: the harness's bank transfers on one
//! database file in the data directory, with the journal mode and
//! `synchronous` level the scenario chose.
//!
//! Every request goes through one connection behind a mutex. SQLite lets
//! one writer in at a time whatever the number of connections, so more
//! would only add `SQLITE_BUSY` retries; one connection makes each
//! transfer's `BEGIN IMMEDIATE … COMMIT` simply wait its turn. A transfer
//! is acknowledged once `COMMIT` returned: durable by SQLite's own rules
//! for the configured `synchronous` level, which is what is under test.

use crate::serve::{Engine, Observed, Transfer, TransferError};
use rusqlite::{Connection, ErrorCode, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The database file inside the data directory.
pub const DB_FILE: &str = "crashlab.db";

/// SQLite as an engine of the agent.
pub struct Sqlite {
    conn: Mutex<Option<Connection>>,
}

/// Why the database could not be opened. Messages read well after "failed to".
#[derive(Debug, thiserror::Error)]
#[error("open {path} with journal_mode={journal_mode}, synchronous={synchronous}")]
pub struct OpenError {
    path: PathBuf,
    journal_mode: String,
    synchronous: String,
    #[source]
    source: Box<rusqlite::Error>,
}

impl Sqlite {
    /// Opens (creating if absent) the database in `data_dir`. Opening
    /// creates no table, so a dataset that is gone stays gone.
    pub fn open(data_dir: &Path, journal_mode: &str, synchronous: &str) -> Result<Sqlite, OpenError> {
        let path = data_dir.join(DB_FILE);
        let err = |source| OpenError {
            path: path.clone(),
            journal_mode: journal_mode.into(),
            synchronous: synchronous.into(),
            source: Box::new(source),
        };
        let conn = Connection::open(&path).map_err(err)?;
        // Both are names SQLite itself validates; they are not user data
        // from the network, and pragmas take no bound parameters.
        let mode: String =
            conn.query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case(journal_mode) {
            return Err(err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode {journal_mode} (got {mode})"
            ))));
        }
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}")).map_err(err)?;
        Ok(Sqlite { conn: Mutex::new(Some(conn)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> Option<T> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().map(f)
    }
}

impl Engine for Sqlite {
    fn setup(&self, accounts: u32, balance: i64) -> Result<(), String> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            tx.execute_batch(
                "DROP TABLE IF EXISTS ledger;
                 DROP TABLE IF EXISTS accounts;
                 CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
                 CREATE TABLE ledger (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL,
                                      amount INTEGER NOT NULL);",
            )?;
            {
                let mut insert = tx.prepare("INSERT INTO accounts (id, balance) VALUES (?1, ?2)")?;
                for id in 0..accounts {
                    insert.execute(params![id, balance])?;
                }
            }
            tx.commit()
        })
        .ok_or_else(|| "the engine is shut down".to_owned())?
        .map_err(|e| format!("create the dataset: {e}"))
    }

    fn transfer(&self, t: Transfer) -> Result<(), TransferError> {
        self.with(|conn| transfer(conn, t)).unwrap_or_else(|| Err(TransferError::Aborted("shut down".into())))
    }

    fn observe(&self) -> Observed {
        self.with(observe).unwrap_or_else(|| Observed::Unreadable("the engine is shut down".into()))
    }

    fn shutdown(&self) {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
        // Closing the last connection checkpoints a WAL into the database,
        // as a clean shutdown of an application would.
        if let Some(conn) = conn {
            let _ = conn.close();
        }
    }
}

/// One transfer: both balance updates in account order (the order every
/// client locks in) and the ledger row, then `COMMIT`.
fn transfer(conn: &mut Connection, t: Transfer) -> Result<(), TransferError> {
    let aborted = |e: rusqlite::Error| TransferError::Aborted(e.to_string());
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(aborted)?;
    let mut moves = [(t.src, -t.amount), (t.dst, t.amount)];
    moves.sort_by_key(|m| m.0);
    for (id, delta) in moves {
        let n = tx
            .execute("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", params![delta, id])
            .map_err(aborted)?;
        if n != 1 {
            return Err(TransferError::Aborted(format!("account {id} does not exist")));
        }
    }
    tx.execute(
        "INSERT INTO ledger (id, src, dst, amount) VALUES (?1, ?2, ?3, ?4)",
        params![t.id as i64, t.src, t.dst, t.amount],
    )
    .map_err(aborted)?;
    // A failed COMMIT may have reached the disk in part: only the reader
    // after recovery can tell.
    tx.commit().map_err(|e| TransferError::InDoubt(e.to_string()))
}

fn observe(conn: &mut Connection) -> Observed {
    match read(conn) {
        Ok(observed) => observed,
        Err(e) if is_corruption(&e) => Observed::Unreadable(e.to_string()),
        Err(e) => Observed::Unreadable(format!("read the dataset: {e}")),
    }
}

fn read(conn: &Connection) -> Result<Observed, rusqlite::Error> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('accounts', 'ledger')",
        [],
        |r| r.get(0),
    )?;
    if tables < 2 {
        return Ok(Observed::Gone(format!("{DB_FILE} has {tables} of the 2 tables")));
    }
    let balances = conn
        .prepare("SELECT id, balance FROM accounts")?
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    if balances.is_empty() {
        return Ok(Observed::Gone("table accounts is empty".into()));
    }
    let ledger = conn
        .prepare("SELECT id, src, dst, amount FROM ledger")?
        .query_map([], |r| {
            Ok(Transfer { id: r.get::<_, i64>(0)? as u64, src: r.get(1)?, dst: r.get(2)?, amount: r.get(3)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let problems = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let check =
        if problems == ["ok"] { Ok(()) } else { Err(format!("PRAGMA integrity_check: {}", problems.join("; "))) };
    Ok(Observed::Present { ledger, balances, check })
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u64, src: u32, dst: u32, amount: i64) -> Transfer {
        Transfer { id, src, dst, amount }
    }

    #[test]
    fn transfers_commit_and_read_back_with_a_clean_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path(), "wal", "full").unwrap();
        assert!(matches!(db.observe(), Observed::Gone(_)));
        db.setup(3, 100).unwrap();
        db.transfer(t(1, 2, 0, 30)).unwrap();
        db.transfer(t(2, 0, 1, 5)).unwrap();
        assert!(matches!(db.transfer(t(3, 0, 9, 5)), Err(TransferError::Aborted(_))));
        assert!(matches!(db.transfer(t(1, 0, 1, 5)), Err(TransferError::Aborted(_))), "duplicate id");
        let Observed::Present { mut ledger, mut balances, check } = db.observe() else { panic!() };
        ledger.sort_by_key(|t| t.id);
        balances.sort();
        assert_eq!(ledger, [t(1, 2, 0, 30), t(2, 0, 1, 5)]);
        assert_eq!(balances, [(0, 125), (1, 105), (2, 70)]);
        assert_eq!(check, Ok(()));
    }

    #[test]
    fn data_survives_a_reopen_and_setup_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path(), "delete", "full").unwrap();
        db.setup(2, 10).unwrap();
        db.transfer(t(1, 0, 1, 3)).unwrap();
        db.shutdown();
        assert!(matches!(db.transfer(t(2, 0, 1, 3)), Err(TransferError::Aborted(_))));
        let db = Sqlite::open(dir.path(), "delete", "full").unwrap();
        let Observed::Present { ledger, .. } = db.observe() else { panic!() };
        assert_eq!(ledger.len(), 1);
        db.setup(2, 10).unwrap();
        let Observed::Present { ledger, .. } = db.observe() else { panic!() };
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_bad_journal_mode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Sqlite::open(dir.path(), "sideways", "full").is_err());
    }

    #[test]
    fn a_damaged_file_is_unreadable_or_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(dir.path(), "delete", "full").unwrap();
        db.setup(500, 10).unwrap();
        db.shutdown();
        let path = dir.path().join(DB_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        // Page 2 onwards: scribble over table pages, leaving the header.
        for b in &mut bytes[4096..6000] {
            *b = 0xa5;
        }
        std::fs::write(&path, bytes).unwrap();
        let db = Sqlite::open(dir.path(), "delete", "full").unwrap();
        match db.observe() {
            Observed::Unreadable(_) | Observed::Present { check: Err(_), .. } => {}
            other => panic!("damage went unnoticed: {other:?}"),
        }
    }
}
