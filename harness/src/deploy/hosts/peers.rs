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
//!
//! `partition` cuts the last member's host off the others ([`partition`]:
//! its container leaves the private network) while the load goes on at
//! the first member, on the majority's side; at the heal it joins again
//! under its host name, and recovery ([`rejoined`]) waits until it
//! answers and, where the workload can tell
//! ([`crashlab_workloads::cluster::Clustering::formed`]), until the
//! cluster counts every member again.

use super::{HostsError, kill_while_probing};
use crate::deploy::deployment::Deployment;
use crate::deploy::topology::Topology;
use crate::docker::Docker;
use crate::run::RunContext;
use crate::storage::{Place, ProvisionOptions, Storage, StorageError, Strategy};
use crashlab_reports::{FailoverTimes, ReplicationCycle};
use crashlab_workloads::Workload;
use crashlab_workloads::cluster::Formed;
use std::time::{Duration, Instant};

/// How long the survivors of a lost member get to answer again.
const SURVIVORS_TIMEOUT: Duration = Duration::from_secs(60);
/// How often they are asked.
const SURVIVORS_POLL: Duration = Duration::from_millis(50);
/// How often a cluster is asked whether it has formed.
const FORMED_POLL: Duration = Duration::from_millis(200);
/// How long a fresh cluster gets to answer and form before every member
/// is restarted ([`wait_cluster_ready`]): on this machine three NATS
/// members formed within 12 s of their start in the runs of
/// docs/workloads.md.
const FORMING_GRACE: Duration = Duration::from_secs(20);

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
    /// The member the current cycle's partition cut off, once healed.
    cut_off: Option<String>,
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
        self.cut_off = None;
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
        cut_off: None,
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
        wait_cluster_ready(&mut d, workload, ready_timeout, &hosts).await
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

/// Waits until every member answers and the cluster says it has formed
/// with all of them. A cluster that has not within [`FORMING_GRACE`] has
/// every member restarted, once, and gets the whole `ready_timeout`
/// again: nats-server 2.10's meta group was seen to go on without one
/// member for minutes, none of that member's messages reaching the others
/// over routes that had been through the resolution of duplicate routes
/// at startup, while theirs reached it (docs/workloads.md).
async fn wait_cluster_ready(
    d: &mut Deployment,
    workload: &dyn Workload,
    ready_timeout: Duration,
    hosts: &[&str],
) -> Result<(), HostsError> {
    let grace = FORMING_GRACE.min(ready_timeout);
    let first = async {
        wait_all_ready(d, workload, grace, hosts).await?;
        wait_formed(d, workload, grace).await
    };
    match first.await {
        Err(HostsError::NotReady { host, detail }) => {
            tracing::warn!("{host}: {detail}; restarting every member, once");
            d.on_every_host(async |m| {
                m.stop(10).await?;
                m.start().await
            })
            .await?;
            wait_all_ready(d, workload, ready_timeout, hosts).await?;
            wait_formed(d, workload, ready_timeout).await
        }
        done => done,
    }
}

/// Waits until the cluster says it has formed with every member
/// ([`crashlab_workloads::cluster::Clustering::formed`]), asked through
/// the first member; at once when the workload cannot tell.
async fn wait_formed(d: &Deployment, workload: &dyn Workload, limit: Duration) -> Result<(), HostsError> {
    let Some(clustering) = workload.clustering() else { return Ok(()) };
    let hosts = d.hosts();
    let addr = d.addr().ok_or(HostsError::Failover("the first member is not running"))?;
    let deadline = Instant::now() + limit;
    loop {
        let why = match tokio::time::timeout(SURVIVORS_POLL * 40, clustering.formed(addr, &hosts)).await {
            Ok(Ok(Formed::Yes | Formed::CannotTell)) => return Ok(()),
            Ok(Ok(Formed::No(why))) => why,
            Ok(Err(e)) => crate::text::error_chain(&e),
            Err(_) => format!("no answer within {:?}", SURVIVORS_POLL * 40),
        };
        if Instant::now() >= deadline {
            let detail = format!("the cluster had not formed with all {} members within {limit:?}: {why}", hosts.len());
            return Err(HostsError::NotReady { host: hosts[0].to_owned(), detail });
        }
        tokio::time::sleep(FORMED_POLL).await;
    }
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

/// `partition`: the last member's host is cut off the others (its
/// container leaves the private network) for `duration` while the load
/// goes on at the first member, then joins again under its host name.
pub async fn partition(d: &mut Deployment, duration: Duration) -> Result<(), HostsError> {
    let peers = peers_mut(d)?;
    let member = peers.members.last().ok_or(HostsError::Failover("no member to cut off"))?;
    let (network, host) = member.network().ok_or(HostsError::Failover("the member is on no network"))?;
    let id = member.container_id().ok_or(HostsError::Failover("the member has no container"))?;
    member.docker().disconnect_network(network, id).await?;
    tokio::time::sleep(duration).await;
    member.docker().connect_network(network, id, host).await?;
    let host = host.to_owned();
    peers.cut_off = Some(host);
    Ok(())
}

/// After a healed [`partition`]: waits until the member that was cut off
/// answers again and the cluster has formed with every member (as far as
/// the workload can tell), and returns the cycle's record.
pub async fn rejoined(
    d: &mut Deployment,
    workload: &dyn Workload,
    limit: Duration,
) -> Result<ReplicationCycle, HostsError> {
    let peers = d.peers().ok_or(HostsError::Failover("the deployment is not a cluster"))?;
    let member = peers.members.last().ok_or(HostsError::Failover("no member was cut off"))?;
    let host = member.network().map_or("the last member", |(_, h)| h).to_owned();
    let timeout = limit.min(SURVIVORS_TIMEOUT);
    if let Err(e) = member.wait_ready(workload, timeout, None).await {
        return Err(HostsError::NotReady { host, detail: e.detail() });
    }
    wait_formed(d, workload, limit).await?;
    Ok(peers_mut(d)?.record.clone())
}

/// What [`partition`] did, for the cycle's `fired`; `None` when no
/// member was cut off.
pub fn describe_partition(peers: &Peers) -> Option<String> {
    let host = peers.cut_off.as_deref()?;
    Some(super::describe(
        &peers.record,
        &format!(
            "member {host}'s host was cut off the other members while the load ran at the first member, with the \
             majority, then joined again"
        ),
    ))
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
