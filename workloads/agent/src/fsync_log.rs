//! The fsync-log probe: the simplest durable store there is, to see what a
//! strategy and a fault do to plain files. Each transfer the harness sends
//! becomes one fixed-size, checksummed, sequence-numbered record appended
//! to `crashlab.log` in the data directory; the writer fsyncs every N
//! records, and a record is acknowledged only once an fsync covering it
//! returned (with N = 0 it never fsyncs and acknowledges once `pwrite`
//! returned, which is durable against nothing but a clean shutdown).
//!
//! With N > 1 and a closed-loop load of C clients, fewer than N records
//! can be waiting when every client is waiting for its acknowledgement; the
//! writer then fsyncs what it has rather than wait forever, so the batch is
//! at most min(N, C) records.
//!
//! # Format
//! A 4 KiB header slot (magic, version, number of accounts, initial
//! balance, CRC-32), then 40-byte record slots: magic `CLR1`, sequence
//! number (from 1), transfer id, source, destination, amount, CRC-32 of the
//! preceding 36 bytes, all little-endian. The file is laid out with zeros
//! ahead of the writer in 4 MiB steps and fsynced before use, as a
//! database's preallocated log is, so an fsync covers the record and not a
//! change of file size, like fio's overwrite of a laid-out file.
//!
//! # Reading back
//! Records are read in order from the first slot. The log ends at the first
//! slot that is all zeros, or at a damaged slot (bad magic or checksum)
//! after which nothing valid follows: a record torn by a crash, which is
//! normal and dropped. A damaged slot or zeros followed by a valid record,
//! or a valid record whose sequence number is not the next one, means the
//! file was reordered or damaged in the middle: the integrity check fails
//! and the verdict is `corrupt`.
//!
//! Balances are not stored: the reader recomputes each account's balance
//! from the header's initial balance and the surviving records' own source,
//! destination and amount, as a database's tables are the sum of its log.
//! A record naming an account the header does not have, or moving money
//! from an account to itself, fails the integrity check (`corrupt`). The
//! harness's checker then compares every record with the transfer it sent
//! (an amount or account that differs is `inconsistent`) and the balances
//! with its own from the accounts and initial balance it set up (a header
//! that claims other ones is `inconsistent`): lost records are lost writes,
//! a record never sent is `inconsistent`.

use crate::serve::{Engine, Observed, Transfer, TransferError};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The log file inside the data directory.
pub const LOG_FILE: &str = "crashlab.log";

const HEADER: u64 = 4096;
const RECORD: usize = 40;
const GROW: u64 = 4 << 20;
const HEADER_MAGIC: &[u8; 8] = b"CRASHLOG";
const RECORD_MAGIC: &[u8; 4] = b"CLR1";

/// The probe as an engine of the agent.
pub struct FsyncLog {
    path: PathBuf,
    dir: PathBuf,
    fsync_every: u32,
    state: Mutex<State>,
    synced: Condvar,
}

#[derive(Default)]
struct State {
    file: Option<File>,
    /// Bytes laid out (zeros, fsynced) so far.
    laid_out: u64,
    next_seq: u64,
    /// Highest sequence number covered by an fsync.
    synced_seq: u64,
    /// Records written since the last fsync.
    pending: u32,
    /// Clients waiting for an fsync.
    waiting: u32,
    /// Connections sending records.
    loaders: u32,
    /// Set once an fsync failed: after that the kernel may have dropped
    /// the data, so nothing more is acknowledged.
    failed: Option<String>,
    shut_down: bool,
}

/// One record slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    seq: u64,
    t: Transfer,
}

impl Record {
    fn encode(&self) -> [u8; RECORD] {
        let mut b = [0; RECORD];
        b[0..4].copy_from_slice(RECORD_MAGIC);
        b[4..12].copy_from_slice(&self.seq.to_le_bytes());
        b[12..20].copy_from_slice(&self.t.id.to_le_bytes());
        b[20..24].copy_from_slice(&self.t.src.to_le_bytes());
        b[24..28].copy_from_slice(&self.t.dst.to_le_bytes());
        b[28..36].copy_from_slice(&self.t.amount.to_le_bytes());
        let crc = crc32fast::hash(&b[..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` when the slot does not hold an intact record.
    fn decode(b: &[u8]) -> Option<Record> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        if b.len() != RECORD || &b[0..4] != RECORD_MAGIC || crc32fast::hash(&b[..36]) != u32_at(36) {
            return None;
        }
        let t = Transfer { id: u64_at(12), src: u32_at(20), dst: u32_at(24), amount: u64_at(28) as i64 };
        Some(Record { seq: u64_at(4), t })
    }
}

fn header(accounts: u32, balance: i64) -> Vec<u8> {
    let mut h = vec![0; HEADER as usize];
    h[0..8].copy_from_slice(HEADER_MAGIC);
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..16].copy_from_slice(&accounts.to_le_bytes());
    h[16..24].copy_from_slice(&balance.to_le_bytes());
    let crc = crc32fast::hash(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

fn parse_header(h: &[u8]) -> Option<(u32, i64)> {
    if h.len() < 28 || &h[0..8] != HEADER_MAGIC || crc32fast::hash(&h[..24]).to_le_bytes() != h[24..28] {
        return None;
    }
    Some((u32::from_le_bytes(h[12..16].try_into().ok()?), i64::from_le_bytes(h[16..24].try_into().ok()?)))
}

/// What reading a log back found.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    accounts: u32,
    balance: i64,
    records: Vec<Record>,
    /// Why the log is not a clean prefix, if it is not.
    damage: Option<String>,
}

fn scan(bytes: &[u8]) -> Result<Scan, String> {
    let head = bytes
        .get(..HEADER as usize)
        .ok_or_else(|| format!("{LOG_FILE} is {} bytes, shorter than its header", bytes.len()))?;
    let (accounts, balance) = parse_header(head).ok_or_else(|| format!("{LOG_FILE} has a damaged header"))?;
    let slots: Vec<&[u8]> = bytes[HEADER as usize..].chunks(RECORD).collect();
    let mut records = Vec::new();
    let mut end_slot = None;
    let mut damage = None;
    for (i, slot) in slots.iter().enumerate() {
        match Record::decode(slot) {
            Some(r) if end_slot.is_none() => {
                if r.seq != records.len() as u64 + 1 {
                    damage = Some(format!("record {} carries sequence number {} (a gap or reordering)", i + 1, r.seq));
                    end_slot = Some(i);
                } else {
                    records.push(r);
                }
            }
            Some(r) => {
                // A valid record after the end: the end was a hole, not
                // the tail.
                damage.get_or_insert_with(|| {
                    format!(
                        "valid record (sequence {}) at slot {} after a damaged or empty slot {}",
                        r.seq,
                        i + 1,
                        end_slot.unwrap_or(0) + 1
                    )
                });
                break;
            }
            None if end_slot.is_none() => end_slot = Some(i),
            None => {}
        }
    }
    Ok(Scan { accounts, balance, records, damage })
}

/// Each of the header's accounts at the header's initial balance plus what
/// the records moved, in account order, and why the records do not fit the
/// header, if they do not: an account it does not have, a transfer from an
/// account to itself, or amounts beyond what a balance can hold. Such a
/// record passed its checksum, so it was written that way (a misdirected
/// or stale write, or damage the checksum missed): it is left out of the
/// balances and fails the check.
fn balances(scan: &Scan) -> (Vec<(u32, i64)>, Option<String>) {
    let mut balances = vec![scan.balance; scan.accounts as usize];
    let mut misfits = Vec::new();
    for r in &scan.records {
        let Transfer { src, dst, amount, .. } = r.t;
        let (s, d) = (src as usize, dst as usize);
        let moved = (src != dst && src < scan.accounts && dst < scan.accounts)
            .then(|| Some((balances[s].checked_sub(amount)?, balances[d].checked_add(amount)?)))
            .flatten();
        if let Some(after) = moved {
            (balances[s], balances[d]) = after;
        } else {
            misfits.push(format!(
                "record {} moves {amount} from account {src} to {dst} (the header has {} accounts)",
                r.seq, scan.accounts
            ));
        }
    }
    let misfit = match misfits.len() {
        0 => None,
        1..=3 => Some(misfits.join("; ")),
        n => Some(format!("{}; {} more records that do not fit the header", misfits[..3].join("; "), n - 3)),
    };
    ((0..scan.accounts).zip(balances).collect(), misfit)
}

impl FsyncLog {
    /// Opens the log in `data_dir` and finds where appending resumes. A
    /// missing log is fine: the harness's setup creates it.
    pub fn open(data_dir: &Path, fsync_every: u32) -> Result<FsyncLog, std::io::Error> {
        let path = data_dir.join(LOG_FILE);
        let mut state = State::default();
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(found) = scan(&bytes)
            && found.damage.is_none()
        {
            state.file = Some(OpenOptions::new().read(true).write(true).open(&path)?);
            state.laid_out = bytes.len() as u64;
            state.next_seq = found.records.len() as u64 + 1;
            state.synced_seq = found.records.len() as u64;
        }
        Ok(FsyncLog { path, dir: data_dir.into(), fsync_every, state: Mutex::new(state), synced: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, accounts: u32, balance: i64) -> std::io::Result<State> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&self.path)?;
        file.write_all_at(&header(accounts, balance), 0)?;
        let mut state = State { file: Some(file), laid_out: HEADER, next_seq: 1, ..State::default() };
        grow(&mut state)?;
        // The file's directory entry must be durable too, or a power cut
        // can take the whole log with it.
        File::open(&self.dir)?.sync_all()?;
        Ok(state)
    }

    fn sync(&self, s: &mut State) -> Result<(), TransferError> {
        let file = s.file.as_ref().ok_or_else(|| TransferError::Aborted("no log".into()))?;
        if let Err(e) = file.sync_all() {
            let why = format!("fsync {LOG_FILE}: {e}");
            s.failed = Some(why.clone());
            self.synced.notify_all();
            return Err(TransferError::InDoubt(why));
        }
        s.synced_seq = s.next_seq - 1;
        s.pending = 0;
        self.synced.notify_all();
        Ok(())
    }
}

/// Lays out another [`GROW`] bytes of zeros and makes them durable.
fn grow(s: &mut State) -> std::io::Result<()> {
    let file = s.file.as_ref().expect("grow is called with a file");
    let zeros = vec![0; 1 << 20];
    for i in 0..GROW / (1 << 20) {
        file.write_all_at(&zeros, s.laid_out + i * (1 << 20))?;
    }
    file.sync_all()?;
    s.laid_out += GROW;
    Ok(())
}

impl Engine for FsyncLog {
    fn setup(&self, accounts: u32, balance: i64) -> Result<(), String> {
        let mut s = self.lock();
        if s.shut_down {
            return Err("the engine is shut down".into());
        }
        let fresh = self.create(accounts, balance).map_err(|e| format!("create {}: {e}", self.path.display()))?;
        let loaders = s.loaders;
        *s = State { loaders, ..fresh };
        Ok(())
    }

    fn transfer(&self, t: Transfer) -> Result<(), TransferError> {
        let mut s = self.lock();
        if let Some(why) = &s.failed {
            return Err(TransferError::Aborted(format!("an earlier fsync failed ({why})")));
        }
        if s.shut_down || s.file.is_none() {
            return Err(TransferError::Aborted("no log: run setup first".into()));
        }
        let seq = s.next_seq;
        let offset = HEADER + (seq - 1) * RECORD as u64;
        if offset + RECORD as u64 > s.laid_out {
            grow(&mut s).map_err(|e| TransferError::Aborted(format!("lay out {LOG_FILE}: {e}")))?;
        }
        let file = s.file.as_ref().expect("checked above");
        if let Err(e) = file.write_all_at(&Record { seq, t }.encode(), offset) {
            return Err(TransferError::InDoubt(format!("write {LOG_FILE}: {e}")));
        }
        s.next_seq += 1;
        if self.fsync_every == 0 {
            return Ok(());
        }
        s.pending += 1;
        loop {
            if s.synced_seq >= seq {
                return Ok(());
            }
            if let Some(why) = &s.failed {
                return Err(TransferError::InDoubt(format!("fsync failed ({why})")));
            }
            if s.pending >= self.fsync_every || s.waiting + 1 >= s.loaders {
                return self.sync(&mut s);
            }
            s.waiting += 1;
            s = self.synced.wait(s).unwrap_or_else(|p| p.into_inner());
            s.waiting -= 1;
        }
    }

    fn loader_joined(&self) {
        self.lock().loaders += 1;
    }

    fn loader_left(&self) {
        self.lock().loaders -= 1;
        // A waiter may now be the last one the writer was waiting for.
        self.synced.notify_all();
    }

    fn observe(&self) -> Observed {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Observed::Gone(format!("{LOG_FILE} is missing"));
            }
            Err(e) => return Observed::Unreadable(format!("read {LOG_FILE}: {e}")),
        };
        let found = match scan(&bytes) {
            Ok(found) => found,
            Err(e) => return Observed::Unreadable(e),
        };
        let (balances, misfit) = balances(&found);
        let ledger = found.records.iter().map(|r| r.t).collect();
        let check = match found.damage.into_iter().chain(misfit).collect::<Vec<_>>() {
            problems if problems.is_empty() => Ok(()),
            problems => Err(format!("{LOG_FILE}: {}", problems.join("; "))),
        };
        Observed::Present { ledger, balances, check }
    }

    fn shutdown(&self) {
        let mut s = self.lock();
        if let Some(file) = s.file.take() {
            let _ = file.sync_all();
        }
        s.shut_down = true;
        self.synced.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn t(id: u64) -> Transfer {
        Transfer { id, src: 0, dst: 1, amount: 0 }
    }

    fn ledger(o: Observed) -> (Vec<u64>, Result<(), String>) {
        match o {
            Observed::Present { ledger, check, .. } => (ledger.iter().map(|t| t.id).collect(), check),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let r = Record { seq: 9, t: Transfer { id: 1 << 41, src: 3, dst: 4, amount: -7 } };
        let mut b = r.encode();
        assert_eq!(Record::decode(&b), Some(r));
        b[30] ^= 1;
        assert_eq!(Record::decode(&b), None);
        assert_eq!(Record::decode(&[0; RECORD]), None);
    }

    #[test]
    fn appended_records_read_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 1).unwrap();
        assert!(matches!(log.observe(), Observed::Gone(_)));
        log.setup(3, 100).unwrap();
        for id in 1..=5 {
            log.transfer(t(id)).unwrap();
        }
        let Observed::Present { balances, .. } = log.observe() else { panic!() };
        assert_eq!(balances, [(0, 100), (1, 100), (2, 100)]);
        drop(log);
        let log = FsyncLog::open(dir.path(), 1).unwrap();
        log.transfer(t(6)).unwrap();
        assert_eq!(ledger(log.observe()), ((1..=6).collect(), Ok(())));
    }

    fn damaged(edit: impl FnOnce(&mut Vec<u8>)) -> (Vec<u64>, Result<(), String>) {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 0).unwrap();
        log.setup(2, 0).unwrap();
        for id in 1..=4 {
            log.transfer(t(id)).unwrap();
        }
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        ledger(log.observe())
    }

    fn slot(i: usize) -> std::ops::Range<usize> {
        let start = HEADER as usize + i * RECORD;
        start..start + RECORD
    }

    #[test]
    fn a_torn_tail_is_dropped_but_damage_in_the_middle_fails_the_check() {
        // The last record half written: normal after a crash.
        let (ids, check) = damaged(|b| b[slot(3)][20..].fill(0));
        assert_eq!((ids, check), (vec![1, 2, 3], Ok(())));
        // The last record never written at all.
        let (ids, check) = damaged(|b| b[slot(3)].fill(0));
        assert_eq!((ids, check), (vec![1, 2, 3], Ok(())));
        // A damaged record with good ones after it.
        let (ids, check) = damaged(|b| b[slot(1)][5] ^= 0xff);
        assert_eq!(ids, [1]);
        assert!(check.unwrap_err().contains("after a damaged or empty slot 2"));
        // A hole: a record missing with good ones after it.
        let (_, check) = damaged(|b| b[slot(2)].fill(0));
        assert!(check.is_err());
        // A gap in the sequence: record 3 replaced by a valid record 7.
        let (ids, check) = damaged(|b| {
            let r = Record { seq: 7, t: t(3) }.encode();
            b[slot(2)].copy_from_slice(&r);
        });
        assert_eq!(ids, [1, 2]);
        assert!(check.unwrap_err().contains("sequence number 7"));
    }

    /// Rewrites the log with `edit`, then reads it back.
    fn edited(log: &FsyncLog, dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) -> Observed {
        let path = dir.join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        edit(&mut bytes);
        std::fs::write(&path, bytes).unwrap();
        log.observe()
    }

    #[test]
    fn balances_are_recomputed_from_the_records_own_accounts_and_amounts() {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 0).unwrap();
        log.setup(3, 100).unwrap();
        let sent = [Transfer { id: 1, src: 0, dst: 1, amount: 30 }, Transfer { id: 2, src: 2, dst: 0, amount: 5 }];
        for t in sent {
            log.transfer(t).unwrap();
        }
        let Observed::Present { balances, check, .. } = log.observe() else { panic!() };
        assert_eq!((balances, check), (vec![(0, 75), (1, 130), (2, 95)], Ok(())));

        // An amount rewritten under a valid checksum (a stale or misdirected
        // write): the balances follow the record, whose difference from
        // what was sent is the harness's checker's to find.
        let amount = |b: &mut Vec<u8>| {
            let r = Record { seq: 1, t: Transfer { amount: 31, ..sent[0] } }.encode();
            b[slot(0)].copy_from_slice(&r);
        };
        let Observed::Present { ledger, balances, check } = edited(&log, dir.path(), amount) else { panic!() };
        assert_eq!(ledger[0].amount, 31);
        assert_eq!((balances, check), (vec![(0, 74), (1, 131), (2, 95)], Ok(())));

        // An account the header does not have fails the check and moves
        // nothing.
        let account = |b: &mut Vec<u8>| {
            let r = Record { seq: 2, t: Transfer { src: 7, ..sent[1] } }.encode();
            b[slot(1)].copy_from_slice(&r);
        };
        let Observed::Present { balances, check, .. } = edited(&log, dir.path(), account) else { panic!() };
        assert_eq!(balances, [(0, 69), (1, 131), (2, 100)]);
        assert_eq!(
            check.unwrap_err(),
            "crashlab.log: record 2 moves 5 from account 7 to 0 (the header has 3 accounts)"
        );
    }

    #[test]
    fn a_header_that_claims_other_accounts_or_balances_shows() {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 0).unwrap();
        log.setup(3, 100).unwrap();
        log.transfer(Transfer { id: 1, src: 2, dst: 0, amount: 5 }).unwrap();
        // A valid header for 2 accounts at 50: the balances start from what
        // it claims, so they disagree with the harness's 3 accounts at 100,
        // and the record naming account 2 does not fit it.
        let wrong = |b: &mut Vec<u8>| b[..HEADER as usize].copy_from_slice(&header(2, 50));
        let Observed::Present { balances, check, .. } = edited(&log, dir.path(), wrong) else { panic!() };
        assert_eq!(balances, [(0, 50), (1, 50)]);
        assert!(check.unwrap_err().contains("from account 2 to 0 (the header has 2 accounts)"));
        // Amounts no balance can hold fail the check too.
        let huge = |b: &mut Vec<u8>| {
            b[..HEADER as usize].copy_from_slice(&header(3, 100));
            let r = Record { seq: 1, t: Transfer { id: 1, src: 2, dst: 0, amount: i64::MAX } }.encode();
            b[slot(0)].copy_from_slice(&r);
        };
        let Observed::Present { balances, check, .. } = edited(&log, dir.path(), huge) else { panic!() };
        assert_eq!(balances, [(0, 100), (1, 100), (2, 100)]);
        assert!(check.is_err());
    }

    #[test]
    fn a_damaged_header_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 1).unwrap();
        log.setup(2, 0).unwrap();
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[13] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(log.observe(), Observed::Unreadable(_)));
    }

    #[test]
    fn the_log_grows_past_its_first_layout() {
        let dir = tempfile::tempdir().unwrap();
        let log = FsyncLog::open(dir.path(), 0).unwrap();
        log.setup(2, 0).unwrap();
        let n = GROW / RECORD as u64 + 10;
        for id in 1..=n {
            log.transfer(t(id)).unwrap();
        }
        let (ids, check) = ledger(log.observe());
        assert_eq!((ids.len() as u64, check), (n, Ok(())));
    }

    #[test]
    fn group_fsync_acknowledges_every_waiting_client() {
        // Every 8 records, with 3 clients: nobody waits for records that
        // cannot come.
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(FsyncLog::open(dir.path(), 8).unwrap());
        log.setup(2, 0).unwrap();
        let clients: Vec<_> = (0..3u64)
            .map(|c| {
                let log = log.clone();
                std::thread::spawn(move || {
                    log.loader_joined();
                    for i in 0..50 {
                        log.transfer(t(c * 1000 + i)).unwrap();
                    }
                    log.loader_left();
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let (ids, check) = ledger(log.observe());
        assert_eq!((ids.len(), check), (150, Ok(())));
    }
}
