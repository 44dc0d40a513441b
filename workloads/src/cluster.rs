//! An engine's own cluster: several servers of one workload, each on its
//! own host, that replicate among themselves (a NATS cluster with its
//! JetStream meta group and streams replicated by Raft). Unlike
//! [`crate::replication`], there is no primary to promote: the members
//! elect their leaders, and a client may talk to any of them. The harness
//! places the members and owns the network between them; the workload
//! knows its engine's words for "you are member N of these", and how to
//! ask whether the cluster has formed.

use crate::WorkloadError;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;

/// What a member said of the cluster it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formed {
    /// Every member is in, and the cluster has elected whatever leader it
    /// needs to serve.
    Yes,
    /// Not yet, and what is missing (the error at the deadline).
    No(String),
    /// The workload has no way to ask this server (it does not answer the
    /// question, or not to crashlab's login).
    CannotTell,
}

/// How servers of one workload form the engine's own cluster.
pub trait Clustering: Send + Sync {
    /// Server flags for the member on host `hosts[me]` (on top of the
    /// scenario's `server-args`, which win), given every member's host
    /// name on the private network.
    fn server_args(&self, me: usize, hosts: &[&str]) -> Vec<String>;

    /// Whether the cluster that the member at `addr` belongs to has formed
    /// with every member, on `hosts`: each member answering its own probe
    /// says nothing of whether they found one another. Asked again until
    /// it says yes, after the cluster is built and after a partition
    /// heals.
    fn formed<'a>(&'a self, _addr: SocketAddr, _hosts: &'a [&'a str]) -> BoxFuture<'a, Result<Formed, WorkloadError>> {
        Box::pin(async { Ok(Formed::CannotTell) })
    }
}
