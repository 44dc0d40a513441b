//! Hosts: a deployment that spans several containers, each standing for a
//! machine with its own storage, on a private network of the run's
//! (labelled and journaled like every other object, so `crashlab clean`
//! removes it). Containers join that network only; the harness reaches
//! each server on its published loopback port, and the servers reach one
//! another by host name (`h1`, `h2`).
//!
//! The replicated strategies (`replica-async`, `replica-semisync`) deploy
//! a primary on `h1` and a replica on `h2`, each on its own named volume,
//! and start replication with the workload's own commands
//! ([`crashlab_workloads::replication`]). The runner's deployment is the
//! primary's; the [`Cluster`] inside it holds the replica. `host-loss` of
//! the primary's host then fails over ([`lose_primary`], [`fail_over`]):
//!
//! 1. just before the fault, the replica's lag (transactions not yet
//!    received, not yet applied) and the primary's synchronous
//!    replication counters are read; a semi-sync primary that fell back
//!    to asynchronous says so here;
//! 2. the primary is killed, its container removed and its volume
//!    destroyed, while a monitor probes it every 10 ms: **detection** is
//!    the time from the kill to its first failed probe;
//! 3. **promotion**: the replica applies what it received, stops
//!    replicating and takes writes;
//! 4. **reconnection**: a client connects to the new primary and commits
//!    a write (outside the dataset); RTO is the sum of the three, measured
//!    back to back.
//!
//! The runner then verifies the new primary with the same oracle. A
//! deployment that lost a host is rebuilt before the next cycle
//! ([`crate::deploy::deployment::Deployment::degraded`]).
//!
//! Shared storage (`glusterfs-replica`) fails over without a replica: a
//! new container starts on another host's mount of the same volume
//! ([`shared`]).
//!
//! The engine's own cluster (`cluster-3`) has no primary to promote: its
//! three members elect their own leaders, and a coordinated power loss
//! strikes them all at once ([`peers`]).

pub mod peers;
pub mod shared;

use crate::deploy::deployment::{Deployment, DeploymentError};
use crate::deploy::readiness::NotReady;
use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::storage::{Place, ProvisionOptions, Storage, StorageError, Strategy};
use crashlab_reports::{FailoverTimes, ReplicationCycle, SyncCycle};
use crashlab_workloads::replication::{Lag, Mode, Replication, Role, Seed};
use crashlab_workloads::{Workload, WorkloadError};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The primary's host name on the private network.
pub const PRIMARY_HOST: &str = "h1";
/// The replica's.
pub const REPLICA_HOST: &str = "h2";
/// How often the replica's lag is sampled during the load.
const LAG_INTERVAL: Duration = Duration::from_millis(200);
/// How often the failover monitor probes the primary.
const MONITOR_INTERVAL: Duration = Duration::from_millis(10);
/// A status query or probe that takes longer than this counts as failed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the first write on a new primary may take.
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Failure to build, fail over or tear down several hosts.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("replicate workload {workload}: it has no replication")]
    NoReplication { workload: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("wait for the server on host {host}: {detail}")]
    NotReady { host: String, detail: String },
    #[error("{what}")]
    Workload {
        what: &'static str,
        #[source]
        source: WorkloadError,
    },
    #[error("seed the replica from the primary: the command exited with {code:?}: {output}")]
    Seed { code: Option<i64>, output: String },
    #[error("form a cluster of workload {workload}: it has none")]
    NoCluster { workload: String },
    #[error("fail over: {0}")]
    Failover(&'static str),
    #[error("wait for the replica to catch up after the heal: still behind after {0:?}")]
    CatchUp(Duration),
    #[error("write on the new primary: no answer within {0:?}")]
    FirstWriteTimeout(Duration),
}

/// The hosts of a replicated deployment beyond the primary's.
pub struct Cluster {
    network: String,
    mode: Mode,
    replication: Arc<dyn Replication>,
    replica: Option<Deployment>,
    /// Deployments of lost hosts, kept for teardown.
    lost: Vec<Deployment>,
    sampler: Option<Sampler>,
    /// When the current cycle's fault began.
    fault_started: Option<Instant>,
    /// What replication did in the current cycle.
    record: ReplicationCycle,
    /// The scenario's settings in force instead of crashlab's defaults.
    user_settings: Vec<String>,
}

struct Sampler {
    task: tokio::task::JoinHandle<()>,
    samples: Arc<Mutex<Vec<Lag>>>,
}

impl Cluster {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn replica(&self) -> Option<&Deployment> {
        self.replica.as_ref()
    }

    pub(crate) fn lost_a_host(&self) -> bool {
        !self.lost.is_empty()
    }

    pub(crate) fn take_replica(&mut self) -> Option<Deployment> {
        self.replica.take()
    }

    pub(crate) fn keep_lost(&mut self, lost: Deployment) {
        self.lost.push(lost);
    }

    /// Cuts the replica's host off the primary's: its container leaves the
    /// private network, so neither resolves nor reaches the other, while
    /// the harness still reaches both on their published ports.
    pub async fn cut(&self) -> Result<(), HostsError> {
        let replica = self.replica.as_ref().ok_or(HostsError::Failover("no replica to cut off"))?;
        let id = replica.container_id().ok_or(HostsError::Failover("the replica has no container"))?;
        Ok(replica.docker().disconnect_network(&self.network, id).await?)
    }

    /// Ends a [`Cluster::cut`]: the replica joins the network again under
    /// its host name.
    pub async fn heal(&self) -> Result<(), HostsError> {
        let replica = self.replica.as_ref().ok_or(HostsError::Failover("no replica to reconnect"))?;
        let id = replica.container_id().ok_or(HostsError::Failover("the replica has no container"))?;
        Ok(replica.docker().connect_network(&self.network, id, REPLICA_HOST).await?)
    }

    /// Reads the replica's lag behind `primary` into the record as the
    /// lag at the fault.
    async fn lag_at_fault(&mut self, primary: SocketAddr) {
        let Some(replica) = self.replica.as_ref().and_then(Deployment::addr) else { return };
        if let Ok(Ok(lag)) = tokio::time::timeout(QUERY_TIMEOUT, self.replication.lag(primary, replica)).await {
            self.record.at_fault_unreceived = Some(lag.unreceived);
            self.record.at_fault_unapplied = Some(lag.unapplied);
        }
    }

    /// Reads the primary's synchronous replication counters into the
    /// record.
    async fn sync_at_fault(&mut self, primary: SocketAddr) {
        if let Ok(Ok(Some(s))) = tokio::time::timeout(QUERY_TIMEOUT, self.replication.sync_state(primary)).await {
            let fell_back = s.fell_back();
            self.record.sync =
                Some(SyncCycle { on: s.on, acknowledged: s.acknowledged, unacknowledged: s.unacknowledged, fell_back });
        }
    }

    /// Starts sampling the replica's lag behind `primary`, for this cycle.
    pub fn start_sampling(&mut self, primary: SocketAddr) {
        self.stop_sampling();
        self.fault_started = None;
        self.record = ReplicationCycle {
            mode: self.mode.as_str().to_owned(),
            lag_unit: self.replication.lag_unit().to_owned(),
            user_settings: self.user_settings.clone(),
            ..Default::default()
        };
        let Some(replica) = self.replica.as_ref().and_then(Deployment::addr) else { return };
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (replication, into) = (self.replication.clone(), samples.clone());
        let task = tokio::spawn(async move {
            loop {
                if let Ok(Ok(lag)) = tokio::time::timeout(QUERY_TIMEOUT, replication.lag(primary, replica)).await {
                    into.lock().expect("lag samples").push(lag);
                }
                tokio::time::sleep(LAG_INTERVAL).await;
            }
        });
        self.sampler = Some(Sampler { task, samples });
    }

    /// Stops sampling and folds the samples into the cycle's record.
    fn stop_sampling(&mut self) {
        let Some(sampler) = self.sampler.take() else { return };
        sampler.task.abort();
        let samples = sampler.samples.lock().expect("lag samples");
        self.record.lag_samples = samples.len() as u32;
        self.record.lag_max_unreceived = samples.iter().map(|l| l.unreceived).max().unwrap_or(0);
        self.record.lag_max_unapplied = samples.iter().map(|l| l.unapplied).max().unwrap_or(0);
    }

    /// The cycle's record so far.
    pub fn record(&self) -> &ReplicationCycle {
        &self.record
    }

    /// Gives the hosts up without removing anything, for `--keep`.
    pub(crate) fn leak(mut self) {
        self.stop_sampling();
        if let Some(replica) = self.replica.take() {
            replica.leak();
        }
        tracing::info!("keeping network {}", self.network);
    }

    /// Removes the other hosts (containers and storage), then the network.
    pub(crate) async fn teardown(mut self, docker: &Docker) -> Result<(), StorageError> {
        self.stop_sampling();
        let hosts = self.replica.take().into_iter().chain(std::mem::take(&mut self.lost));
        tear_down(docker, &self.network, hosts).await
    }
}

/// Removes `hosts` (each container and its storage), every one tried,
/// then `network`; the first failure is the result.
pub(super) async fn tear_down(
    docker: &Docker,
    network: &str,
    hosts: impl Iterator<Item = Deployment>,
) -> Result<(), StorageError> {
    let mut torn = Ok(());
    for d in hosts {
        torn = torn.and(Box::pin(d.teardown()).await);
    }
    docker.remove_network_if_present(network).await?;
    torn
}

/// Builds a replicated deployment from the primary's (created by the
/// runner, not yet started): a private network, the primary on `h1`, a
/// replica on `h2` on its own named volume, both ready, and replication
/// streaming. Everything is removed again when a step fails.
pub async fn deploy(
    docker: &Docker,
    run: &RunContext,
    workload: &dyn Workload,
    primary: Deployment,
    mode: Mode,
    ready_timeout: Duration,
) -> Result<Deployment, HostsError> {
    let replication =
        workload.replication().ok_or_else(|| HostsError::NoReplication { workload: workload.name().to_owned() })?;
    let name = primary.name().to_owned();
    // The workload's own container, before the primary's flags are added.
    let spec = primary.spec().clone();
    let network = format!("{name}-net");
    if let Err(e) = docker.create_network(&network, run.labels()).await {
        // Its storage exists already.
        primary.teardown().await.ok();
        return Err(e.into());
    }
    let (d, user_settings) =
        primary.on_network(&network, PRIMARY_HOST).with_default_args(replication.server_args(Role::Primary, mode, 1));
    let mut d = d;
    if !user_settings.is_empty() {
        tracing::info!(
            "{name}: the scenario's server-args stand in for crashlab's defaults: {}",
            user_settings.join(", ")
        );
    }
    d.set_cluster(Cluster {
        network: network.clone(),
        mode,
        replication: replication.clone(),
        replica: None,
        lost: vec![],
        sampler: None,
        fault_started: None,
        record: ReplicationCycle::default(),
        user_settings,
    });
    let built = build(docker, run, workload, &mut d, spec, ready_timeout).await;
    torn_down_on_error(d, built).await
}

/// `d` once it is built, or, when a step failed, the step's error after
/// everything `d` holds was removed.
pub(super) async fn torn_down_on_error(d: Deployment, built: Result<(), HostsError>) -> Result<Deployment, HostsError> {
    match built {
        Ok(()) => Ok(d),
        Err(e) => {
            if let Err(torn) = d.teardown().await {
                tracing::warn!("teardown failed: {torn}");
            }
            Err(e)
        }
    }
}

async fn build(
    docker: &Docker,
    run: &RunContext,
    workload: &dyn Workload,
    d: &mut Deployment,
    spec: crashlab_workloads::ContainerSpec,
    ready_timeout: Duration,
) -> Result<(), HostsError> {
    let cluster = d.cluster().expect("set by deploy");
    let (replication, mode) = (cluster.replication.clone(), cluster.mode);
    let (network, _) = d.network().expect("set above");
    let network = network.to_owned();
    let name = format!("{}-{REPLICA_HOST}", d.name());
    let storage =
        Storage::provision(docker, run, &Place::Strategy(Strategy::NamedVolume), &name, ProvisionOptions::default())
            .await?;
    let (replica, _) = Deployment::new(docker.clone(), run.clone(), spec, storage, name)
        .on_network(&network, REPLICA_HOST)
        .with_default_args(replication.server_args(Role::Replica, mode, 2));
    let seed = replication.seed(PRIMARY_HOST, d.spec().port, REPLICA_HOST);
    d.cluster_mut().expect("set by deploy").replica = Some(replica);
    let ready = |host: &str, e: NotReady| HostsError::NotReady { host: host.to_owned(), detail: e.detail() };
    d.create().await?;
    d.start().await?;
    let primary = d.wait_ready(workload, ready_timeout, None).await.map_err(|e| ready(PRIMARY_HOST, e))?;
    let replica = d.cluster_mut().and_then(|c| c.replica.as_mut()).expect("set above");
    replica.create().await?;
    if let Some(seed) = seed {
        let primary_id = d.container_id().ok_or(HostsError::Failover("the primary has no container"))?.to_owned();
        let replica = d.cluster_mut().and_then(|c| c.replica.as_mut()).expect("set above");
        seed_replica(docker, run, &primary_id, replica, &seed).await?;
    }
    let replica = d.cluster_mut().and_then(|c| c.replica.as_mut()).expect("set above");
    replica.start().await?;
    let replica = d.cluster().and_then(|c| c.replica.as_ref()).expect("set above");
    let replica = replica.wait_ready(workload, ready_timeout, None).await.map_err(|e| ready(REPLICA_HOST, e))?;
    let port = d.spec().port;
    replication
        .start_replica(primary, replica, PRIMARY_HOST.to_owned(), port, mode)
        .await
        .map_err(|source| HostsError::Workload { what: "start replication", source })
}

/// Makes the replica's data directory from the primary's, before the
/// replica's container (created, not started) runs: the seed's command in
/// the primary's container, its directory copied across as a tar under
/// the run directory.
async fn seed_replica(
    docker: &Docker,
    run: &RunContext,
    primary_id: &str,
    replica: &Deployment,
    seed: &Seed,
) -> Result<(), HostsError> {
    let done = docker.exec(primary_id, &seed.command).await?;
    if done.exit_code != Some(0) {
        return Err(HostsError::Seed { code: done.exit_code, output: done.output.trim().to_owned() });
    }
    let tar = run.dir().join(format!("{}-seed.tar", replica.name()));
    docker.download(primary_id, &seed.copy, &tar).await?;
    let replica_id = replica.container_id().ok_or(HostsError::Failover("the replica has no container"))?;
    let uploaded = docker.upload_file(replica_id, &seed.into, &tar).await;
    let _ = std::fs::remove_file(&tar);
    Ok(uploaded?)
}

/// Kills the host of the server at `addr` (SIGKILL, the container removed,
/// its storage lost) while a monitor probes the server every
/// [`MONITOR_INTERVAL`]; returns the detection time: from `killed` to the
/// first probe that failed or timed out.
pub(crate) async fn kill_while_probing(
    d: &mut Deployment,
    workload: &dyn Workload,
    addr: SocketAddr,
    killed: Instant,
) -> Result<Duration, HostsError> {
    let monitor = async {
        loop {
            match tokio::time::timeout(QUERY_TIMEOUT, workload.probe(addr)).await {
                Ok(Ok(())) => tokio::time::sleep(MONITOR_INTERVAL).await,
                _ => return killed.elapsed(),
            }
        }
    };
    let damage = async {
        d.kill().await?;
        d.remove().await?;
        d.lose_storage().await?;
        Ok::<(), HostsError>(())
    };
    let (detected, damage) = tokio::join!(monitor, damage);
    damage?;
    Ok(detected)
}

/// `host-loss` of the primary's host: reads the lag and the synchronous
/// replication state just before, then kills, removes and destroys the
/// primary while a monitor probes it.
pub async fn lose_primary(d: &mut Deployment, workload: &dyn Workload) -> Result<(), HostsError> {
    let primary = d.addr().ok_or(HostsError::Failover("the primary is not running"))?;
    let cluster = d.cluster_mut().ok_or(HostsError::Failover("the deployment has one host"))?;
    let fault_started = *cluster.fault_started.get_or_insert_with(Instant::now);
    cluster.stop_sampling();
    cluster.lag_at_fault(primary).await;
    cluster.sync_at_fault(primary).await;
    let killed = Instant::now();
    cluster.record.host_lost_after_ms = Some(killed.duration_since(fault_started).as_secs_f64() * 1e3);
    let detected = kill_while_probing(d, workload, primary, killed).await?;
    let cluster = d.cluster_mut().expect("checked above");
    cluster.record.failover = Some(FailoverTimes { detection_ms: detected.as_secs_f64() * 1e3, ..Default::default() });
    Ok(())
}

/// After [`lose_primary`]: promotes the replica, makes it the deployment,
/// and times a client's first acknowledged write on it. Returns the
/// cycle's replication record.
pub async fn fail_over(d: &mut Deployment) -> Result<ReplicationCycle, HostsError> {
    let cluster = d.cluster().ok_or(HostsError::Failover("the deployment has one host"))?;
    let replication = cluster.replication.clone();
    let replica = cluster
        .replica
        .as_ref()
        .and_then(Deployment::addr)
        .ok_or(HostsError::Failover("the replica is not running"))?;
    let started = Instant::now();
    replication
        .promote(replica)
        .await
        .map_err(|source| HostsError::Workload { what: "promote the replica", source })?;
    let promotion = started.elapsed();
    if !d.promote_replica() {
        return Err(HostsError::Failover("no replica to promote"));
    }
    let addr = d.addr().ok_or(HostsError::Failover("the new primary is not running"))?;
    let started = Instant::now();
    match tokio::time::timeout(FIRST_WRITE_TIMEOUT, replication.write_probe(addr)).await {
        Ok(written) => written.map_err(|source| HostsError::Workload { what: "write on the new primary", source })?,
        Err(_) => return Err(HostsError::FirstWriteTimeout(FIRST_WRITE_TIMEOUT)),
    }
    let reconnection = started.elapsed();
    let cluster = d.cluster_mut().expect("kept by the promotion");
    let times = cluster.record.failover.get_or_insert_with(FailoverTimes::default);
    times.promotion_ms = promotion.as_secs_f64() * 1e3;
    times.reconnection_ms = reconnection.as_secs_f64() * 1e3;
    times.rto_ms = times.detection_ms + times.promotion_ms + times.reconnection_ms;
    Ok(cluster.record.clone())
}

/// `partition`: cuts the replica off the primary for `duration` while the
/// load goes on, reads the lag and the synchronous replication counters
/// just before the heal, and heals.
pub async fn partition(d: &mut Deployment, duration: Duration) -> Result<(), HostsError> {
    let primary = d.addr().ok_or(HostsError::Failover("the primary is not running"))?;
    let cluster = d.cluster_mut().ok_or(HostsError::Failover("the deployment has one host"))?;
    cluster.fault_started = Some(Instant::now());
    cluster.cut().await?;
    tokio::time::sleep(duration).await;
    cluster.stop_sampling();
    cluster.lag_at_fault(primary).await;
    cluster.sync_at_fault(primary).await;
    cluster.heal().await
}

/// After a healed [`partition`]: waits until the replica applied
/// everything the primary committed, and returns the cycle's record.
pub async fn catch_up(d: &mut Deployment, limit: Duration) -> Result<ReplicationCycle, HostsError> {
    let primary = d.addr().ok_or(HostsError::Failover("the primary is not running"))?;
    let cluster = d.cluster().ok_or(HostsError::Failover("the deployment has one host"))?;
    let replica = cluster
        .replica
        .as_ref()
        .and_then(Deployment::addr)
        .ok_or(HostsError::Failover("the replica is not running"))?;
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout(QUERY_TIMEOUT, cluster.replication.lag(primary, replica)).await {
            Ok(Ok(lag)) if lag.unapplied == 0 => return Ok(cluster.record.clone()),
            _ if Instant::now() > deadline => return Err(HostsError::CatchUp(limit)),
            _ => tokio::time::sleep(LAG_INTERVAL).await,
        }
    }
}

/// `partition-failover`: cuts the replica off, lets the load go on for
/// `duration`, then loses the primary's host ([`lose_primary`]) and
/// reconnects the replica, ready for [`fail_over`].
pub async fn partition_then_lose_primary(
    d: &mut Deployment,
    workload: &dyn Workload,
    duration: Duration,
) -> Result<(), HostsError> {
    let cluster = d.cluster_mut().ok_or(HostsError::Failover("the deployment has one host"))?;
    cluster.fault_started = Some(Instant::now());
    cluster.cut().await?;
    tokio::time::sleep(duration).await;
    lose_primary(d, workload).await?;
    d.cluster().expect("checked above").heal().await
}

/// What a fault that lost or cut a host did, for the cycle's `fired`.
pub fn describe(record: &ReplicationCycle, what: &str) -> String {
    let mut text = what.to_owned();
    if !record.user_settings.is_empty() {
        text.push_str(&format!(
            "; in force from the scenario's server-args instead of crashlab's defaults: {}",
            record.user_settings.join(", ")
        ));
    }
    if let Some(n) = record.at_fault_unreceived {
        text.push_str(&format!("; the replica had not yet received {n} {} the primary committed", record.lag_unit));
    }
    if let Some(s) = &record.sync {
        text.push_str(&if s.fell_back {
            format!(
                "; semi-sync FELL BACK to asynchronous (on: {}, {} commit(s) answered without the replica)",
                s.on,
                s.unacknowledged.map_or("an uncounted number of".to_owned(), |n| n.to_string())
            )
        } else if let Some(n) = s.acknowledged.filter(|&n| n > 0) {
            format!("; semi-sync held: {n} commit(s) acknowledged by the replica")
        } else {
            "; synchronous replication in force".to_owned()
        });
    }
    text
}
