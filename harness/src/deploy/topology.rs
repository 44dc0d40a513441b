//! The shape of a deployment — one host, a primary with a replica on
//! another host, a host on storage that storage hosts serve, or the
//! members of the engine's own cluster — and what
//! each shape does when a fault takes a host. Faults call
//! [`Deployment::begin_fault`], [`Deployment::lose_host`],
//! [`Deployment::fail_over`] and [`Deployment::describe_host_loss`]
//! without asking which shape it is:
//!
//! | topology | `lose_host` | `fail_over` | sampled during the load |
//! |---|---|---|---|
//! | single host | the server killed, its container removed, its data destroyed | none: no standby ([`FailOver::NoStandby`]); the caller builds a new host, from a backup where there is one | nothing |
//! | replicated | the primary's host lost while a monitor probes it ([`hosts::lose_primary`]) | the replica promoted, its first write timed ([`hosts::fail_over`]) | the replica's lag |
//! | shared | the server's host and its client mount lost while a monitor probes it ([`hosts::shared::lose_host`]) | another host mounts the volume and starts the server ([`hosts::shared::fail_over`]) | nothing; the record of the failover |
//! | the engine's own cluster | the first member's host lost while a monitor probes it ([`hosts::peers::lose_first`]) | the next member serves once the survivors answer ([`hosts::peers::fail_over`]) | nothing; the record of the failover |
//!
//! A partition ([`Deployment::partition`]) cuts the replica's host off the
//! primary's, or the last member's off the other members of a cluster;
//! [`Deployment::catch_up`] then waits until the replica has applied
//! everything, or the member has rejoined its cluster.

use crate::deploy::deployment::Deployment;
use crate::deploy::hosts::peers::Peers;
use crate::deploy::hosts::{self, Cluster, HostsError};
use crate::storage::Storage;
use crashlab_reports::ReplicationCycle;
use crashlab_workloads::Workload;

/// A host of a topology as a fault schedule names it: the server's own
/// host (the primary), the replica's, or a storage host of a shared
/// volume. Each fault acts on one of them ([`crate::faults::Behaviour::host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    Primary,
    Replica,
    Storage,
}

impl Host {
    pub const ALL: [Host; 3] = [Host::Primary, Host::Replica, Host::Storage];

    pub fn as_str(self) -> &'static str {
        match self {
            Host::Primary => "primary",
            Host::Replica => "replica",
            Host::Storage => "storage",
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Host {
    type Err = String;

    fn from_str(s: &str) -> Result<Host, String> {
        Host::ALL.into_iter().find(|h| h.as_str() == s).ok_or_else(|| {
            format!(
                "unknown host `{}`: a fault acts on the primary, the replica or a storage host",
                crate::text::one_line(s)
            )
        })
    }
}

/// The hosts a deployment spans.
pub enum Topology {
    /// One host holds the server and its storage.
    Single,
    /// A primary (the deployment) and the other hosts ([`hosts`]).
    Replicated(Box<Cluster>),
    /// The server's host mounts a volume that lives on storage hosts
    /// ([`hosts::shared`]); what the cycle's fault did to it.
    Shared(Box<ReplicationCycle>),
    /// The first member of the engine's own cluster (the deployment) and
    /// the others ([`hosts::peers`]).
    Peers(Box<Peers>),
}

/// What [`Deployment::fail_over`] found after a host's loss.
#[derive(Debug)]
pub enum FailOver {
    /// Another host serves now: what replication, or the shared storage,
    /// did in the cycle.
    Served(Box<ReplicationCycle>),
    /// Nothing stood by: a new host must be built, empty or from a backup.
    NoStandby,
}

impl Topology {
    /// The topology of a deployment on `storage` before any other host is
    /// added: shared when the storage lives on storage hosts.
    pub(crate) fn of(storage: &Storage) -> Topology {
        match storage.gluster() {
            Some(_) => Topology::Shared(Box::default()),
            None => Topology::Single,
        }
    }

    /// The shared storage's record, to add what a storage host's loss did.
    pub(crate) fn shared_record_mut(&mut self) -> Option<&mut ReplicationCycle> {
        match self {
            Topology::Shared(record) => Some(record),
            _ => None,
        }
    }
}

impl Deployment {
    /// Starts the record of a fault that may take a host: the replica's
    /// lag sampled from now on, or a fresh record of the shared storage.
    pub fn begin_fault(&mut self) {
        let primary = self.addr();
        match self.topology_mut() {
            Topology::Single => {}
            Topology::Replicated(cluster) => {
                if let Some(primary) = primary {
                    cluster.start_sampling(primary);
                }
            }
            Topology::Shared(record) => {
                **record = ReplicationCycle { mode: "sync".into(), lag_unit: "none".into(), ..Default::default() };
            }
            Topology::Peers(peers) => peers.begin_fault(),
        }
    }

    /// Loses the server's host at once, with no graceful anything: the
    /// server killed, its container removed, and what lived on the host
    /// destroyed (its data, or its client mount of shared storage).
    pub async fn lose_host(&mut self, workload: &dyn Workload) -> Result<(), HostsError> {
        match self.topology() {
            Topology::Single => {
                self.kill().await?;
                self.remove().await?;
                self.lose_storage().await?;
                Ok(())
            }
            Topology::Replicated(_) => hosts::lose_primary(self, workload).await,
            Topology::Shared(_) => hosts::shared::lose_host(self, workload).await,
            Topology::Peers(_) => hosts::peers::lose_first(self, workload).await,
        }
    }

    /// After [`Deployment::lose_host`]: another host takes the service
    /// over where one stands by.
    pub async fn fail_over(&mut self, workload: &dyn Workload) -> Result<FailOver, HostsError> {
        match self.topology() {
            Topology::Single => Ok(FailOver::NoStandby),
            Topology::Replicated(_) => Ok(FailOver::Served(Box::new(hosts::fail_over(self).await?))),
            Topology::Shared(_) => Ok(FailOver::Served(Box::new(hosts::shared::fail_over(self, workload).await?))),
            Topology::Peers(_) => Ok(FailOver::Served(Box::new(hosts::peers::fail_over(self, workload).await?))),
        }
    }

    /// Cuts one host off the others for `duration` while the load goes on
    /// at the server's: the replica's host off the primary's, or the last
    /// member's off the rest of the cluster; then heals.
    pub async fn partition(&mut self, duration: std::time::Duration) -> Result<(), HostsError> {
        match self.topology() {
            Topology::Peers(_) => hosts::peers::partition(self, duration).await,
            _ => hosts::partition(self, duration).await,
        }
    }

    /// After a healed [`Deployment::partition`]: waits until the host that
    /// was cut off has caught up, within `limit`, and returns the cycle's
    /// record.
    pub async fn catch_up(
        &mut self,
        workload: &dyn Workload,
        limit: std::time::Duration,
    ) -> Result<ReplicationCycle, HostsError> {
        match self.topology() {
            Topology::Peers(_) => hosts::peers::rejoined(self, workload, limit).await,
            _ => hosts::catch_up(self, limit).await,
        }
    }

    /// What a [`Deployment::partition`] did, for the cycle's `fired`;
    /// `None` when nothing was cut off.
    pub fn describe_partition(&self, what: &str) -> Option<String> {
        match self.topology() {
            Topology::Replicated(cluster) => Some(hosts::describe(cluster.record(), what)),
            Topology::Peers(peers) => hosts::peers::describe_partition(peers),
            Topology::Single | Topology::Shared(_) => None,
        }
    }

    /// What [`Deployment::lose_host`] did, for the cycle's `fired`.
    pub fn describe_host_loss(&self) -> String {
        match self.topology() {
            Topology::Single => "the server was killed, its container removed and its data destroyed".into(),
            Topology::Replicated(cluster) => {
                hosts::describe(cluster.record(), "the primary's host was lost (killed, removed, its volume destroyed)")
            }
            Topology::Shared(_) => "the database's host was lost (killed, its container removed, its client mount \
                                    of the shared volume gone); the volume stayed on its storage hosts"
                .into(),
            Topology::Peers(peers) => hosts::peers::describe_loss(peers),
        }
    }
}
