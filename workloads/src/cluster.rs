//! An engine's own cluster: several servers of one workload, each on its
//! own host, that replicate among themselves (a NATS cluster with its
//! JetStream meta group and streams replicated by Raft). Unlike
//! [`crate::replication`], there is no primary to promote: the members
//! elect their leaders, and a client may talk to any of them. The harness
//! places the members and owns the network between them; the workload
//! knows its engine's words for "you are member N of these".

/// How servers of one workload form the engine's own cluster.
pub trait Clustering: Send + Sync {
    /// Server flags for the member on host `hosts[me]` (on top of the
    /// scenario's `server-args`, which win), given every member's host
    /// name on the private network.
    fn server_args(&self, me: usize, hosts: &[&str]) -> Vec<String>;
}
