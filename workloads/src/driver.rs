//! What every transfer driver shares: the choice of transfers, each
//! client's slice of the ack log, and the loop that runs the clients until
//! the harness says stop and gathers their logs.
//!
//! A client records a transfer as `Aborted` before it sends anything, turns
//! it `InDoubt` just before its commit goes out and `Acked` once the commit
//! is answered, so whatever ends the client, the log already says what the
//! server may have kept.

use crate::ack::ledger_id;
use crate::{AckLog, LoadConfig, LoadOutcome, Outcome, Span, Transfer, WorkloadError, latency_histogram};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One client's record: its part of the ack log and its commit latencies.
/// Shared with the load loop so that a client aborted mid-transaction
/// loses nothing it recorded.
#[derive(Debug)]
pub(crate) struct ClientState {
    log: AckLog,
    latency_us: Histogram<u64>,
    epoch: Instant,
}

impl ClientState {
    fn new(epoch: Instant) -> ClientState {
        ClientState { log: AckLog::default(), latency_us: latency_histogram(), epoch }
    }
}

/// A client's handle on its record.
#[derive(Debug, Clone)]
pub(crate) struct Record(Arc<Mutex<ClientState>>);

impl Record {
    fn new(epoch: Instant) -> Record {
        Record(Arc::new(Mutex::new(ClientState::new(epoch))))
    }

    /// Logs `t` as `Aborted` (nothing sent yet) and returns its index.
    pub(crate) fn begin(&self, t: Transfer) -> usize {
        let mut s = self.0.lock().expect("client state lock");
        let start_us = s.epoch.elapsed().as_micros() as u64;
        s.log.entries.push((t, Outcome::Aborted));
        s.log.times.push(Span { start_us, end_us: 0 });
        s.log.entries.len() - 1
    }

    /// Transfers logged so far, whatever their outcome.
    fn len(&self) -> usize {
        self.0.lock().expect("client state lock").log.entries.len()
    }

    /// Marks the transfer's commit as sent.
    fn in_doubt(&self, index: usize) {
        self.0.lock().expect("client state lock").log.entries[index].1 = Outcome::InDoubt;
    }

    /// Marks the transfer acknowledged and records its latency.
    pub(crate) fn acked(&self, index: usize, started: Instant) {
        let mut s = self.0.lock().expect("client state lock");
        s.log.entries[index].1 = Outcome::Acked;
        s.log.times[index].end_us = s.epoch.elapsed().as_micros() as u64;
        let us = started.elapsed().as_micros().max(1) as u64;
        let _ = s.latency_us.record(us.min(600_000_000));
    }

    /// Marks a transfer that the server rolled back (deadlock, conflict):
    /// it was never committed, whatever state the log gave it.
    pub(crate) fn rolled_back(&self, index: usize) {
        self.0.lock().expect("client state lock").log.entries[index].1 = Outcome::Aborted;
    }

    fn take(&self) -> ClientState {
        let mut s = self.0.lock().expect("client state lock");
        let epoch = s.epoch;
        std::mem::replace(&mut *s, ClientState::new(epoch))
    }
}

/// The transfers one client sends, from its own seed.
pub(crate) struct Transfers {
    rng: SmallRng,
    client: u32,
    accounts: u32,
    seq: u64,
}

impl Transfers {
    #[cfg(test)]
    pub(crate) fn new(client: u32, accounts: u32, seed: u64) -> Transfers {
        Transfers::resume(client, accounts, seed, 0)
    }

    /// A client's transfers after its first `sent`, for a client that
    /// connects again: ledger ids go on from where its log stopped, so they
    /// stay unique.
    fn resume(client: u32, accounts: u32, seed: u64, sent: u64) -> Transfers {
        Transfers { rng: SmallRng::seed_from_u64(seed ^ sent), client, accounts, seq: sent }
    }

    pub(crate) fn next_transfer(&mut self) -> Transfer {
        self.seq += 1;
        let src = self.rng.random_range(0..self.accounts);
        let mut dst = self.rng.random_range(0..self.accounts - 1);
        if dst >= src {
            dst += 1;
        }
        Transfer { id: ledger_id(self.client, self.seq), src, dst, amount: self.rng.random_range(1..=100) }
    }
}

/// What a client is given to run with.
pub(crate) struct ClientContext {
    pub client: u32,
    pub transfers: Transfers,
    pub stop: watch::Receiver<bool>,
    pub record: Record,
    /// See [`LoadConfig::reconnect`].
    pub reconnect: bool,
}

/// Lets an attempt mark its transfer in doubt just before the commit goes
/// out.
pub(crate) struct InDoubt {
    record: Record,
    index: usize,
}

impl InDoubt {
    pub(crate) fn mark(&self) {
        self.record.in_doubt(self.index);
    }
}

/// How one transfer attempt ended, as the driver's protocol tells it.
pub(crate) enum Attempt {
    /// The commit was acknowledged.
    Committed,
    /// The server rolled the transaction back (deadlock, conflict) and the
    /// connection is still good: go on with the next transfer.
    RolledBack,
    /// The client cannot go on. `rolled_back`: the server said nothing of
    /// the transaction was applied.
    Failed { error: String, rolled_back: bool },
}

/// One protocol's way of attempting a transfer on its connection. A trait
/// rather than an async closure: the client runs in a spawned task, and the
/// compiler cannot yet show a borrowing async closure's future `Send`.
pub(crate) trait Attempter: Send {
    /// Runs one transfer; calls [`InDoubt::mark`] just before the commit.
    fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> impl Future<Output = Attempt> + Send;
}

/// How long a reconnecting client waits for its connection and the
/// server's greeting. Docker's port proxy accepts a connection while the
/// server behind it is still starting and may then hold it silently: a
/// client that waited on it for ever would miss the server's return.
const RECONNECT_TIMEOUT: Duration = Duration::from_millis(300);

impl ClientContext {
    /// Connects with `connect`; in a load that reconnects, gives up after
    /// [`RECONNECT_TIMEOUT`]. The error names the client.
    pub(crate) async fn connect<T, E: std::fmt::Display>(
        &self,
        connect: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        let client = self.client;
        let connected = if self.reconnect {
            match tokio::time::timeout(RECONNECT_TIMEOUT, connect).await {
                Ok(connected) => connected,
                Err(_) => return Err(format!("client {client}: connect: no answer within {RECONNECT_TIMEOUT:?}")),
            }
        } else {
            connect.await
        };
        connected.map_err(|e| format!("client {client}: connect: {e}"))
    }

    /// The client's loop, the same for every protocol: take the next
    /// transfer, log it, attempt it, log how it ended, until told to stop or
    /// until an attempt fails. Returns the error that ended the client
    /// early, if one did.
    pub(crate) async fn run(self, attempter: &mut impl Attempter) -> Option<String> {
        let ClientContext { client, mut transfers, stop, record, .. } = self;
        while !*stop.borrow() {
            let t = transfers.next_transfer();
            let index = record.begin(t);
            let started = Instant::now();
            match attempter.attempt(t, InDoubt { record: record.clone(), index }).await {
                Attempt::Committed => record.acked(index, started),
                Attempt::RolledBack => record.rolled_back(index),
                Attempt::Failed { error, rolled_back } => {
                    if rolled_back {
                        record.rolled_back(index);
                    }
                    return Some(format!("client {client}: {error}"));
                }
            }
        }
        None
    }
}

/// How long a client whose connection failed waits before it connects
/// again, in a load that reconnects.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Client errors kept word for word; further ones are only counted.
const ERRORS_KEPT: usize = 20;

/// Runs `load.clients` clients made by `client` until `stop` turns true
/// (each client checks it between transfers) or they fail, aborts those
/// still stuck `grace` after the stop, and merges their records. A client
/// returns the error that ended it early, if one did; when the load
/// reconnects, a client so ended is made again (same record, ledger ids
/// going on) after a short delay, until the stop.
pub(crate) async fn run_clients<F, Fut>(
    load: LoadConfig,
    stop: watch::Receiver<bool>,
    grace: Duration,
    mut client: F,
) -> Result<LoadOutcome, WorkloadError>
where
    F: FnMut(ClientContext) -> Fut,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    let epoch = Instant::now();
    let mut records = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let seed_of = |id: u32| load.seed ^ u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for id in 0..load.clients {
        let record = Record::new(epoch);
        records.push(record.clone());
        let transfers = Transfers::resume(id, load.accounts, seed_of(id), load.ids_from);
        let ctx = ClientContext { client: id, transfers, stop: stop.clone(), record, reconnect: load.reconnect };
        let run = client(ctx);
        tasks.spawn(async move { (id, run.await) });
    }
    let mut client_errors = Vec::new();
    let mut more_errors = 0usize;
    let mut stop_rx = stop.clone();
    let mut stopped_at: Option<Instant> = None;
    let mut aborted = false;
    loop {
        // Once aborted, the tasks end on their own; without this the past
        // deadline would fire again on every turn until they have.
        let deadline = stopped_at.filter(|_| !aborted).map(|t| t + grace);
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((_, None))) => {}
                Some(Ok((id, Some(err)))) => {
                    tracing::debug!("client {id} ended: {err}");
                    if client_errors.len() < ERRORS_KEPT {
                        client_errors.push(err);
                    } else {
                        more_errors += 1;
                    }
                    if load.reconnect && stopped_at.is_none() && !*stop.borrow() {
                        let record = records[id as usize].clone();
                        let transfers = Transfers::resume(id, load.accounts, seed_of(id), load.ids_from + record.len() as u64);
                        let run = client(ClientContext {
                            client: id,
                            transfers,
                            stop: stop.clone(),
                            record,
                            reconnect: true,
                        });
                        let mut stop = stop.clone();
                        tasks.spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(RECONNECT_DELAY) => (id, run.await),
                                () = async { let _ = stop.wait_for(|s| *s).await; } => (id, None),
                            }
                        });
                    }
                }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => return Err(WorkloadError::Join(e)),
            },
            _ = stop_rx.wait_for(|s| *s), if stopped_at.is_none() => {
                stopped_at = Some(Instant::now());
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                // A client still blocked after the grace period is stuck on
                // a dead connection; its record is shared, so aborting it
                // loses nothing it logged.
                client_errors.push(format!("{} client(s) stuck after stop, aborted", tasks.len()));
                tasks.abort_all();
                aborted = true;
            }
        }
    }
    if more_errors > 0 {
        client_errors.push(format!("and {more_errors} more client error(s)"));
    }
    let mut log = AckLog::default();
    let mut latency_us = latency_histogram();
    for record in records {
        let state = record.take();
        log.extend(state.log);
        latency_us.add(&state.latency_us).expect("histograms share bounds");
    }
    Ok(LoadOutcome { log, latency_us, client_errors, epoch })
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_move_money_between_two_distinct_accounts() {
        let mut t = Transfers::new(3, 2, 9);
        for seq in 1..100 {
            let x = t.next_transfer();
            assert_ne!(x.src, x.dst);
            assert!(x.src < 2 && x.dst < 2 && (1..=100).contains(&x.amount));
            assert_eq!(x.id, ledger_id(3, seq));
        }
    }

    #[tokio::test]
    async fn a_client_stuck_after_stop_is_aborted_with_its_record_kept() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = LoadConfig { clients: 2, accounts: 4, seed: 1, reconnect: false, ids_from: 0, replicas: 1 };
        let load = run_clients(config, stop_rx, Duration::from_millis(50), |mut ctx| async move {
            let t = ctx.transfers.next_transfer();
            let i = ctx.record.begin(t);
            ctx.record.in_doubt(i);
            if ctx.client == 0 {
                ctx.record.acked(i, Instant::now());
                let _ = ctx.stop.wait_for(|s| *s).await;
                None
            } else {
                // Stuck on a dead connection.
                std::future::pending::<()>().await;
                None
            }
        });
        let _ = stop_tx.send(true);
        let outcome = load.await.unwrap();
        assert_eq!(outcome.log.acked(), 1);
        assert_eq!(outcome.log.count(Outcome::InDoubt), 1);
        assert_eq!(outcome.client_errors, ["1 client(s) stuck after stop, aborted"]);
    }

    #[tokio::test]
    async fn a_reconnecting_client_goes_on_with_fresh_ledger_ids_until_the_stop() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let config = LoadConfig { clients: 1, accounts: 4, seed: 1, reconnect: true, ids_from: 0, replicas: 1 };
        let load = run_clients(config, stop_rx, Duration::from_secs(5), |mut ctx| async move {
            // Each incarnation acknowledges two transfers, then its
            // connection "fails".
            for _ in 0..2 {
                let t = ctx.transfers.next_transfer();
                let i = ctx.record.begin(t);
                ctx.record.acked(i, Instant::now());
            }
            Some("connection reset".to_owned())
        });
        let stopper = async {
            tokio::time::sleep(RECONNECT_DELAY * 3 + RECONNECT_DELAY / 2).await;
            let _ = stop_tx.send(true);
        };
        let (outcome, ()) = tokio::join!(load, stopper);
        let outcome = outcome.unwrap();
        let ids: std::collections::HashSet<u64> = outcome.log.entries.iter().map(|(t, _)| t.id).collect();
        assert!(outcome.log.acked() >= 6, "three incarnations at least: {}", outcome.log.acked());
        assert_eq!(ids.len(), outcome.log.entries.len(), "ledger ids stay unique across reconnects");
        assert_eq!(outcome.log.times.len(), outcome.log.entries.len());
        assert!(outcome.log.times.iter().all(|s| s.end_us >= s.start_us && s.end_us > 0));
    }
}
