//! Records a cycle's picture in time ([`Timeline`]): the load's
//! acknowledgements in buckets, read from the ack log's spans, and the
//! instants the runner knows (the fault's start and end, the first
//! successful query), with a first write timed after the recovery.
//!
//! The load's clients stop at the fault and nothing writes again until the
//! next cycle, so the first write after recovery is a probe made here: the
//! workload's write outside its dataset (the one a failover times, into
//! `crashlab.failover_probe`), made once the data has been read back and
//! the verdict settled, so the verdict never depends on it. Workloads
//! without such a write (they do not replicate) have no first write.

use crashlab_reports::CycleReport;
use crashlab_reports::timeline::{BUCKET_MS, Timeline};
use crashlab_workloads::{AckLog, Outcome, Workload};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the write after recovery may take.
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets `report.timeline` from the load and the fault's start and end.
/// `verified`: the service came back at `addr` and its data has just been
/// read back; a first write is then timed on it.
pub async fn record(
    report: &mut CycleReport,
    (log, epoch): (&AckLog, Instant),
    (fault_started, fault_done): (Instant, Instant),
    verified: Option<(&dyn Workload, SocketAddr)>,
) {
    let since = |t: Instant| t.saturating_duration_since(epoch).as_secs_f64() * 1e3;
    let acks = log.entries.iter().zip(&log.times).filter(|((_, o), _)| *o == Outcome::Acked);
    let fault_end_ms = since(fault_done);
    let mut timeline = Timeline {
        bucket_ms: BUCKET_MS,
        buckets: Timeline::bucket(acks.map(|(_, span)| (span.end_us, span.latency_us())), BUCKET_MS),
        fault_ms: since(fault_started),
        fault_end_ms,
        recovered_ms: report.recovery_ms.map(|r| fault_end_ms + r),
        ..Timeline::default()
    };
    match verified {
        None => timeline.first_write = "none: the service did not come back".to_owned(),
        Some((workload, addr)) => {
            timeline.verified_ms = Some(since(Instant::now()));
            match first_write(workload, addr).await {
                Ok(how) => {
                    timeline.first_write_ms = Some(since(Instant::now()));
                    timeline.first_write = how;
                }
                Err(why) => timeline.first_write = why,
            }
        }
    }
    report.timeline = Some(timeline);
}

/// Makes the workload's write outside its dataset and says what it was,
/// or why there was none.
async fn first_write(workload: &dyn Workload, addr: SocketAddr) -> Result<String, String> {
    let Some(replication) = workload.replication() else {
        return Err(format!("not measured: {} has no write outside its dataset to probe with", workload.name()));
    };
    match tokio::time::timeout(FIRST_WRITE_TIMEOUT, replication.write_probe(addr)).await {
        Ok(Ok(())) => {
            Ok("a write into crashlab.failover_probe on a new connection, once the data had been read back".to_owned())
        }
        Ok(Err(e)) => {
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                why = format!("{why}: {inner}");
                source = inner.source();
            }
            Err(format!("none: the write after recovery failed: {why}"))
        }
        Err(_) => Err(format!("none: the write after recovery had no answer within {FIRST_WRITE_TIMEOUT:?}")),
    }
}
