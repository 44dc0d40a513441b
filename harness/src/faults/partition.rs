//! Faults across hosts of a replicated deployment ([`crate::deploy::hosts`]):
//!
//! - `partition`: the replica's host is cut off the primary's (its
//!   container leaves the private network) for `[faults] partition` (1 s
//!   by default) while the load goes on, then the network heals; recovery waits until the
//!   replica has applied everything the primary committed, and the
//!   primary is verified. Asynchronous replication keeps acknowledging
//!   commits through the cut; semi-sync makes them wait for the replica.
//!   On the engine's own cluster (`cluster-3`) the last member's host is
//!   cut off the other two, the load going on at the first, with the
//!   majority; recovery waits until the member answers and the cluster
//!   has formed with every member again, and the first member is
//!   verified.
//! - `partition-failover`: the same cut, and at its end the primary's
//!   host is lost and the service fails over to the replica, which never
//!   received what the primary acknowledged after the cut.
//!
//! Both are `n/a` on single-host strategies, and `partition-failover` on
//! the engine's own cluster, which has no primary to lose.

use super::{Behaviour, Cx, Fault, FaultError, Recovered, fired};
use crate::deploy::hosts;
use crate::deploy::topology::Host;
use crate::settings::FaultsSection;
use crate::storage::StrategyDef;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// How long a healed replica gets to catch up.
const CATCH_UP: Duration = Duration::from_secs(60);

fn one_host(strategy: &StrategyDef) -> Option<&'static str> {
    (strategy.data_on.replication().is_none() && strategy.data_on.members().is_none()).then_some(
        "a partition cuts one host off another, and this strategy keeps its data on one host; run it on \
         `replica-async`, `replica-semisync` or `cluster-3`",
    )
}

fn described(cx: &Cx<'_>, what: &str) -> Fired {
    match cx.deployment.describe_partition(what) {
        Some(text) => fired(text),
        None => super::not_fired("no host was cut off"),
    }
}

/// Cut, load on, heal, catch up, verify the primary.
pub struct Partition;

impl Behaviour for Partition {
    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        one_host(strategy)
    }

    fn host(&self) -> Host {
        Host::Replica
    }

    /// The primary goes on serving through the cut and after the heal.
    fn leaves_service_up(&self) -> bool {
        true
    }

    fn set_length(&self, knobs: &mut FaultsSection, length: Duration) -> bool {
        knobs.partition = length;
        true
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        cx.deployment.begin_fault();
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { Ok(cx.deployment.partition(cx.knobs.partition).await?) })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move { described(cx, "the replica was cut off the primary while the load ran, then healed") })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            let replication = cx.deployment.catch_up(cx.workload, CATCH_UP).await?;
            Ok(Recovered { restored: None, replication: Some(replication) })
        })
    }
}

/// Cut, load on, lose the primary's host, fail over to the replica.
pub struct PartitionFailover;

impl Behaviour for PartitionFailover {
    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        if strategy.data_on.members().is_some() {
            return Some(
                "the engine's own cluster has no primary to lose after a cut; run `partition` (one member cut \
                 off the other two) or `host-loss` on it",
            );
        }
        one_host(strategy)
    }

    fn set_length(&self, knobs: &mut FaultsSection, length: Duration) -> bool {
        knobs.partition = length;
        true
    }

    fn simpler(&self) -> Option<Fault> {
        Some(Fault::HostLoss)
    }

    fn loses_host(&self) -> bool {
        true
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        cx.deployment.begin_fault();
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            Ok(hosts::partition_then_lose_primary(cx.deployment, cx.workload, cx.knobs.partition).await?)
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            described(cx, "the replica was cut off the primary while the load ran, then the primary's host was lost")
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            let replication = hosts::fail_over(cx.deployment).await?;
            Ok(Recovered { restored: None, replication: Some(replication) })
        })
    }
}
