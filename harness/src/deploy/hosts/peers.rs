//! The engine's own cluster (`cluster-3`): every member a host with its
//! own named volume — on the fault filesystem when a fault of the cell
//! needs it, one mount per member — on the cell's private network as
//! `h1`, `h2`, `h3`, each started with the workload's clustering flags
//! ([`crashlab_workloads::cluster::Clustering`]) after the scenario's
//! `server-args`, which win. The runner's deployment is `h1`'s, and the
//! load's clients talk to it; the [`Peers`] inside it hold the others.
//! There is no replica to promote: the members elect their own leaders.
//!
//! The faults that strike every host at once reach the other members
//! through [`Deployment::members_mut`] and
//! [`Deployment::fault_mounts_mut`] (a coordinated power cut, every
//! server killed; [`crate::faults::power`], [`crate::faults::container`]).
//! `host-loss` loses `h1`'s host ([`lose_first`]: killed, removed, its
//! volume destroyed, while a monitor probes it) and the service goes on
//! at `h2` ([`fail_over`]): promotion is the time until a survivor
//! answers again, which needs the remaining members to agree on a
//! leader. A deployment that lost a member is rebuilt before the next
//! cycle.

use super::{HostsError, kill_while_probing};
use crate::deploy::deployment::Deployment;
use crate::deploy::topology::Topology;
use crate::docker::Docker;
use crate::run::RunContext;
use crate::storage::{Place, ProvisionOptions, Storage, StorageError, Strategy};
use crashlab_reports::{FailoverTimes, ReplicationCycle};
use crashlab_workloads::Workload;
use std::time::{Duration, Instant};

/// How long the survivors of a lost member get to answer again.
const SURVIVORS_TIMEOUT: Duration = Duration::from_secs(60);
/// How often they are asked.
const SURVIVORS_POLL: Duration = Duration::from_millis(50);

/// The members of a cluster beyond the runner's deployment (`h1`).
pub struct Peers {
    network: String,
    /// `h2`, `h3`, …, in order.
    members: Vec<Deployment>,
    /// Deployments of lost hosts, kept for teardown.
    lost: Vec<Deployment>,
    /// What the current cycle's fault did, when it lost a host.
    record: ReplicationCycle,
    /// The scenario's settings in force instead of crashlab's defaults.
    user_settings: Vec<String>,
}

impl Peers {
    /// The other members, in host order.
    pub fn members(&self) -> &[Deployment] {
        &self.members
    }

    pub(crate) fn members_mut(&mut self) -> &mut [Deployment] {
        &mut self.members
    }

    pub(crate) fn lost_a_host(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Starts the record of a fault that may take a member.
    pub(crate) fn begin_fault(&mut self) {
        self.record = ReplicationCycle {
            mode: "sync".into(),
            lag_unit: "none".into(),
            user_settings: self.user_settings.clone(),
            ..Default::default()
        };
    }

    pub(crate) async fn teardown(mut self, docker: &Docker) -> Result<(), StorageError> {
        let hosts = std::mem::take(&mut self.members).into_iter().chain(std::mem::take(&mut self.lost));
        super::tear_down(docker, &self.network, hosts).await
    }
}

/// Builds a cluster of `members` from the first member's deployment
/// (created by the runner, not yet started): a private network, each
/// member on its own storage of `strategy` (the fault filesystem as
/// `options` say, with a seed of its own), all started and answering.
/// Everything is removed again when a step fails.
pub async fn deploy(
    docker: &Docker,
    run: &RunContext,
    workload: &dyn Workload,
    first: Deployment,
    (strategy, members): (Strategy, u8),
    options: ProvisionOptions,
    ready_timeout: Duration,
) -> Result<Deployment, HostsError> {
    let Some(clustering) = workload.clustering() else {
        first.teardown().await.ok();
        return Err(HostsError::NoCluster { workload: workload.name().to_owned() });
    };
    let name = first.name().to_owned();
    let spec = first.spec().clone();
    let network = format!("{name}-net");
    if let Err(e) = docker.create_network(&network, run.labels()).await {
        first.teardown().await.ok();
        return Err(e.into());
    }
    let hosts: Vec<String> = (1..=members).map(|i| format!("h{i}")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let (mut d, user_settings) =
        first.on_network(&network, hosts[0]).with_default_args(clustering.server_args(0, &hosts));
    if !user_settings.is_empty() {
        tracing::info!(
            "{name}: the scenario's server-args stand in for crashlab's defaults: {}",
            user_settings.join(", ")
        );
    }
    d.set_peers(Peers {
        network: network.clone(),
        members: vec![],
        lost: vec![],
        record: Default::default(),
        user_settings,
    });
    let built = async {
        for (i, host) in hosts.iter().enumerate().skip(1) {
            let mut options = options;
            if let Some(fs) = options.faultfs.as_mut() {
                fs.seed ^= (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            }
            let member_name = format!("{name}-{host}");
            let storage = Storage::provision(docker, run, &Place::Strategy(strategy), &member_name, options).await?;
            let (member, _) = Deployment::new(docker.clone(), run.clone(), spec.clone(), storage, member_name)
                .on_network(&network, host)
                .with_default_args(clustering.server_args(i, &hosts));
            d.peers_mut().expect("set above").members.push(member);
        }
        // Every member on the network before any starts, so that each
        // finds the others' names at its first attempt to route to them.
        d.on_every_host(async |m| m.create().await).await?;
        d.on_every_host(async |m| m.start().await).await?;
        wait_all_ready(&d, workload, ready_timeout, &hosts).await
    };
    let built = built.await;
    super::torn_down_on_error(d, built).await
}

/// Waits until every member answers.
async fn wait_all_ready(
    d: &Deployment,
    workload: &dyn Workload,
    ready_timeout: Duration,
    hosts: &[&str],
) -> Result<(), HostsError> {
    let all = std::iter::once(d).chain(d.peers().map(Peers::members).unwrap_or_default());
    for (member, host) in all.zip(hosts) {
        if let Err(e) = member.wait_ready(workload, ready_timeout, None).await {
            return Err(HostsError::NotReady { host: (*host).to_owned(), detail: e.detail() });
        }
    }
    Ok(())
}

/// `host-loss` of the first member's host: SIGKILL, the container
/// removed, its volume destroyed, while a monitor probes it.
pub async fn lose_first(d: &mut Deployment, workload: &dyn Workload) -> Result<(), HostsError> {
    let addr = d.addr().ok_or(HostsError::Failover("the first member is not running"))?;
    let killed = Instant::now();
    let detected = kill_while_probing(d, workload, addr, killed).await?;
    let peers = peers_mut(d)?;
    peers.record.host_lost_after_ms = Some(0.0);
    peers.record.failover = Some(FailoverTimes { detection_ms: detected.as_secs_f64() * 1e3, ..Default::default() });
    Ok(())
}

/// After [`lose_first`]: the next member becomes the deployment, and the
/// time until it answers is the promotion (the survivors electing their
/// leaders). Returns the cycle's record.
pub async fn fail_over(d: &mut Deployment, workload: &dyn Workload) -> Result<ReplicationCycle, HostsError> {
    let peers = peers_mut(d)?;
    if peers.members.is_empty() {
        return Err(HostsError::Failover("no member left to serve"));
    }
    let mut next = peers.members.remove(0);
    std::mem::swap(d, &mut next);
    // The survivor's deployment, now this one, takes the cluster over.
    d.set_topology(std::mem::replace(next.topology_mut(), Topology::Single));
    peers_mut(d)?.lost.push(next);
    let addr = d.addr().ok_or(HostsError::Failover("the next member is not running"))?;
    let started = Instant::now();
    loop {
        match tokio::time::timeout(SURVIVORS_POLL * 40, workload.probe(addr)).await {
            Ok(Ok(())) => break,
            _ if started.elapsed() > SURVIVORS_TIMEOUT => {
                return Err(HostsError::NotReady {
                    host: "a surviving member".into(),
                    detail: format!("no answer within {SURVIVORS_TIMEOUT:?}"),
                });
            }
            _ => tokio::time::sleep(SURVIVORS_POLL).await,
        }
    }
    let peers = peers_mut(d)?;
    let times = peers.record.failover.get_or_insert_with(FailoverTimes::default);
    times.promotion_ms = started.elapsed().as_secs_f64() * 1e3;
    times.rto_ms = times.detection_ms + times.promotion_ms;
    Ok(peers.record.clone())
}

/// What [`lose_first`] did, for the cycle's `fired`.
pub fn describe_loss(peers: &Peers) -> String {
    super::describe(
        &peers.record,
        "the first member's host was lost (killed, removed, its volume destroyed); the other members serve on",
    )
}

fn peers_mut(d: &mut Deployment) -> Result<&mut Peers, HostsError> {
    d.peers_mut().ok_or(HostsError::Failover("the deployment is not a cluster"))
}
