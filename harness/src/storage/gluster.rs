//! `glusterfs-replica`: a replicated GlusterFS volume (`replica 3`) served
//! by three storage hosts and mounted on the harness's host with the FUSE
//! client, whose mount the database's container binds.
//!
//! Each storage host is a container of `crashlab/glusterfs` (Debian's
//! `glusterfs-server`, [`crashlab_workloads::glusterfs`]) on a private
//! network of the cell's, with its brick on its own named volume. The
//! containers get `CAP_SYS_ADMIN`: a brick keeps GlusterFS's metadata in
//! `trusted.*` extended attributes, which only that capability may write. The pool is formed and the volume created, started
//! and checked with the `gluster` CLI through `exec`; peers and bricks are
//! named by their addresses on the private network, since the FUSE client
//! runs on the harness's host, which reaches those addresses over the
//! bridge but cannot resolve the containers' names.
//!
//! The FUSE client (`mount -t glusterfs`, from Debian's `glusterfs-client`)
//! runs on the harness's host rather than in a client container: the
//! database container binds a directory of the mount as it would bind any
//! host directory, with no mount propagation between containers to get
//! right, and the host's client is what a Docker host using the volume
//! runs. Each mount is journaled before it is made, under the run
//! directory, so that `crashlab clean` detaches what a killed run left.
//!
//! The database's host losing its life (`host-loss`) loses the host's
//! client mount, not the volume: the service fails over by mounting the
//! volume afresh (the other host's client) and starting a new container on
//! it. Losing a storage host (`storage-node-loss`) kills its container and
//! destroys its brick; the volume goes on serving from the other two, the
//! majority GlusterFS's client quorum asks of a replica-3 volume.

use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::run::journal::{Entry, JournalError};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Storage hosts, one brick each.
pub const NODES: usize = 3;
/// The GlusterFS volume's name (each cell has its own pool).
const VOLUME: &str = "crashlab";
/// Where a storage host's named volume is mounted.
const BRICKS: &str = "/bricks";
/// The brick itself: a directory on that volume, so that the volume's
/// root (owned by Docker) is not the brick's.
const BRICK: &str = "/bricks/brick";
/// The directory of the mount the database's container binds: its own,
/// below the volume's root, where GlusterFS may keep internal entries.
pub const DATA_DIR: &str = "data";
/// How long the pool and the volume get to form and come online.
const READY: Duration = Duration::from_secs(90);
/// How often a readiness condition is checked again.
const POLL: Duration = Duration::from_millis(250);
/// Seconds a client waits for an unanswering brick before it gives up on
/// it (`network.ping-timeout`; GlusterFS's default is 42). A killed storage
/// host's connections are reset at once, so this only bounds a host that
/// vanished without a word.
const PING_TIMEOUT_S: u32 = 5;

/// Failure to build, use or tear down the GlusterFS volume.
#[derive(Debug, thiserror::Error)]
pub enum GlusterError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("run `{command}` on storage host {host} (exit {code:?}): {output}")]
    Cli { host: String, command: String, code: Option<i64>, output: String },
    #[error("wait for {what}: not within {limit:?}; last answer: {last}")]
    NotReady { what: String, limit: Duration, last: String },
    #[error("find the address of storage host {host} on network {network}")]
    NoAddress { host: String, network: String },
    #[error("mount the GlusterFS volume: `mount.glusterfs` is missing; install Debian's `glusterfs-client`")]
    MissingClient,
    #[error("start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run `{command}` ({status}): {stderr}")]
    Mount { command: String, status: ExitStatus, stderr: String },
    #[error("create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount {path}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: crashlab_faultfs::MountError,
    },
    #[error("lose a storage host: none is left to lose")]
    NoNode,
}

/// One storage host.
#[derive(Debug)]
struct Node {
    /// Its host name (`s1`, `s2`, `s3`).
    host: String,
    /// Its container's name.
    container: String,
    /// The named volume its brick is on.
    brick_volume: String,
    /// Its address on the private network, once it runs.
    ip: String,
    /// False once it was lost.
    alive: bool,
}

/// A cell's GlusterFS pool, its volume and the host's current client mount.
pub struct GlusterVolume {
    docker: Docker,
    /// `<run dir>/gluster/<cell>`: the client mounts and their logs.
    dir: PathBuf,
    network: String,
    nodes: Vec<Node>,
    /// Client mounts made so far; each gets its own mountpoint.
    mounts: u32,
    /// The current client mount.
    mounted: Option<PathBuf>,
}

impl std::fmt::Debug for GlusterVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlusterVolume")
            .field("network", &self.network)
            .field("nodes", &self.nodes)
            .field("mounted", &self.mounted)
            .finish_non_exhaustive()
    }
}

impl GlusterVolume {
    /// Starts three storage hosts on a private network, forms the pool,
    /// creates and starts the replicated volume and waits until every
    /// brick is online. What was created is removed again on failure.
    pub async fn create(docker: &Docker, run: &RunContext, cell: &str) -> Result<GlusterVolume, GlusterError> {
        // Short names: a peer names a storage host by the reverse lookup
        // of its address (`<container>.<network>` on a Docker network),
        // and GlusterFS truncates a name of about 100 characters, which
        // then resolves to nothing and leaves the peer outside the pool
        // ("Accepted peer request (Disconnected)"). A cell's own name is
        // that long; the pool gets a number of the run's instead.
        static POOLS: AtomicU32 = AtomicU32::new(0);
        let name = run.object_name(&format!("g{}", POOLS.fetch_add(1, Ordering::Relaxed) + 1));
        tracing::info!("GlusterFS pool {name} for {cell}");
        let name = name.as_str();
        let network = format!("{name}-net");
        let mut volume = GlusterVolume {
            docker: docker.clone(),
            dir: run.dir().join("gluster").join(name),
            network: network.clone(),
            nodes: vec![],
            mounts: 0,
            mounted: None,
        };
        match volume.build(run, name).await {
            Ok(()) => Ok(volume),
            Err(e) => {
                if let Err(torn) = volume.teardown().await {
                    tracing::warn!("teardown of the GlusterFS pool failed: {torn}");
                }
                Err(e)
            }
        }
    }

    async fn build(&mut self, run: &RunContext, name: &str) -> Result<(), GlusterError> {
        self.docker.create_network(&self.network, run.labels()).await?;
        for i in 1..=NODES {
            let host = format!("s{i}");
            let node = Node {
                container: format!("{name}-{host}"),
                brick_volume: format!("{name}-{host}-brick"),
                host,
                ip: String::new(),
                alive: true,
            };
            self.docker.create_volume(&node.brick_volume, run.labels()).await?;
            let config = ContainerCreateBody {
                image: Some(crashlab_workloads::glusterfs::IMAGE.to_owned()),
                hostname: Some(node.host.clone()),
                labels: Some(run.labels()),
                host_config: Some(HostConfig {
                    // trusted.* extended attributes on the brick need
                    // CAP_SYS_ADMIN. Not `privileged`: that asks for every
                    // capability, and a daemon whose own bounding set
                    // lacks one (CAP_SYS_RESOURCE here) cannot start it.
                    cap_add: Some(vec!["SYS_ADMIN".to_owned()]),
                    network_mode: Some(self.network.clone()),
                    mounts: Some(vec![Mount {
                        target: Some(BRICKS.to_owned()),
                        source: Some(node.brick_volume.clone()),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            self.docker.create_container(&node.container, config).await?;
            self.nodes.push(node);
            let node = self.nodes.last().expect("pushed above");
            self.docker.start(&node.container).await?;
        }
        for i in 0..self.nodes.len() {
            let inspect = self.docker.inspect(&self.nodes[i].container).await?;
            let ip = inspect
                .network_settings
                .and_then(|s| s.networks)
                .and_then(|n| n.get(&self.network).and_then(|e| e.ip_address.clone()))
                .filter(|ip| !ip.is_empty())
                .ok_or_else(|| GlusterError::NoAddress {
                    host: self.nodes[i].host.clone(),
                    network: self.network.clone(),
                })?;
            self.nodes[i].ip = ip;
        }
        for i in 0..self.nodes.len() {
            self.until(i, "glusterd to answer", &["pool", "list"], |_| true).await?;
        }
        // The first host invites the others; a peer whose glusterd is not
        // yet listening makes the probe fail, so it is tried again.
        for i in 1..self.nodes.len() {
            let ip = self.nodes[i].ip.clone();
            self.until(0, &format!("peer probe of {ip}"), &["peer", "probe", &ip], |_| true).await?;
        }
        self.until(0, "every peer to be connected", &["pool", "list"], |out| out.matches("Connected").count() == NODES)
            .await?;
        let mut create = vec!["volume".to_owned(), "create".into(), VOLUME.into(), "replica".into(), NODES.to_string()];
        create.extend(self.nodes.iter().map(|n| format!("{}:{BRICK}", n.ip)));
        // `force`: the brick directory is on the host's root filesystem
        // as far as glusterd can tell (a Docker volume), which it warns of.
        create.push("force".into());
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        // A peer can still be settling into the pool: try again until the
        // deadline.
        self.until(0, "the volume to be created", &create, |_| true).await?;
        let ping = PING_TIMEOUT_S.to_string();
        self.gluster(0, &["volume", "set", VOLUME, "network.ping-timeout", &ping]).await?;
        self.gluster(0, &["volume", "start", VOLUME]).await?;
        self.until(0, "every brick to be online", &["volume", "status", VOLUME], |out| bricks_online(out) == NODES)
            .await?;
        Ok(())
    }

    /// Runs `gluster --mode=script <args>` on storage host `i`.
    async fn gluster(&self, i: usize, args: &[&str]) -> Result<String, GlusterError> {
        let mut cmd = vec!["gluster".to_owned(), "--mode=script".to_owned()];
        cmd.extend(args.iter().map(|a| (*a).to_owned()));
        let done = self.docker.exec(&self.nodes[i].container, &cmd).await?;
        if done.exit_code == Some(0) {
            Ok(done.output)
        } else {
            Err(GlusterError::Cli {
                host: self.nodes[i].host.clone(),
                command: cmd.join(" "),
                code: done.exit_code,
                output: done.output.trim().to_owned(),
            })
        }
    }

    /// Runs `args` on host `i` until it succeeds with an output `ok`
    /// accepts, or [`READY`] runs out.
    async fn until(
        &self,
        i: usize,
        what: &str,
        args: &[&str],
        ok: impl Fn(&str) -> bool,
    ) -> Result<String, GlusterError> {
        let deadline = Instant::now() + READY;
        loop {
            let last = match self.gluster(i, args).await {
                Ok(out) if ok(&out) => return Ok(out),
                Ok(out) => out.trim().to_owned(),
                Err(GlusterError::Cli { output, .. }) => output,
                Err(e) => return Err(e),
            };
            if Instant::now() > deadline {
                return Err(GlusterError::NotReady { what: what.to_owned(), limit: READY, last });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Mounts the volume with the FUSE client at a new mountpoint, as a
    /// host that starts using it would, and makes sure the data directory
    /// exists on it. Any earlier mount must be gone.
    pub async fn mount(&mut self, run: &RunContext) -> Result<(), GlusterError> {
        self.mounts += 1;
        let mountpoint = self.dir.join(format!("mnt-{}", self.mounts));
        run.journal().record(&Entry::Mount(mountpoint.clone()))?;
        std::fs::create_dir_all(&mountpoint)
            .map_err(|source| GlusterError::CreateDir { path: mountpoint.clone(), source })?;
        let mut alive = self.nodes.iter().filter(|n| n.alive).map(|n| n.ip.as_str());
        let first = alive.next().ok_or(GlusterError::NoNode)?;
        let backups: Vec<&str> = alive.collect();
        let log = self.dir.join(format!("client-{}.log", self.mounts));
        let mut options = format!("log-file={}", log.display());
        if !backups.is_empty() {
            // The volume file can be fetched from the others when the
            // first host is gone.
            options.push_str(&format!(",backup-volfile-servers={}", backups.join(":")));
        }
        let args = vec![
            "-t".to_owned(),
            "glusterfs".to_owned(),
            "-o".to_owned(),
            options,
            format!("{first}:/{VOLUME}"),
            mountpoint.display().to_string(),
        ];
        let command = format!("mount {}", args.join(" "));
        let output =
            tokio::task::spawn_blocking(move || Command::new("mount").args(&args).stdin(Stdio::null()).output())
                .await
                .expect("mount call panicked")
                .map_err(|source| GlusterError::Spawn { command: command.clone(), source })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            if !client_installed() {
                return Err(GlusterError::MissingClient);
            }
            return Err(GlusterError::Mount { command, status: output.status, stderr });
        }
        self.mounted = Some(mountpoint.clone());
        let data = mountpoint.join(DATA_DIR);
        std::fs::create_dir_all(&data).map_err(|source| GlusterError::CreateDir { path: data, source })?;
        Ok(())
    }

    /// The data directory on the current client mount, which the
    /// database's container binds.
    pub fn data_path(&self) -> Option<PathBuf> {
        self.mounted.as_ref().map(|m| m.join(DATA_DIR))
    }

    /// Drops the host's client mount (its host is gone, or it is being
    /// replaced by a fresh one). Nothing may use it any more.
    pub fn unmount(&mut self) -> Result<(), GlusterError> {
        let Some(mountpoint) = self.mounted.take() else { return Ok(()) };
        crashlab_faultfs::unmount_stale(&mountpoint)
            .map_err(|source| GlusterError::Unmount { path: mountpoint.clone(), source })?;
        // The empty mountpoint; the run directory's removal takes it
        // otherwise.
        let _ = std::fs::remove_dir(&mountpoint);
        Ok(())
    }

    /// Loses storage host `i`: SIGKILL, its container removed and its
    /// brick's volume destroyed. Returns when the kill landed (its
    /// removal can take seconds more on a busy machine).
    pub async fn lose_node(&mut self, i: usize) -> Result<Instant, GlusterError> {
        let node = self.nodes.get_mut(i).filter(|n| n.alive).ok_or(GlusterError::NoNode)?;
        node.alive = false;
        self.docker.kill(&node.container, "SIGKILL").await?;
        let killed = Instant::now();
        self.docker.remove_container(&node.container).await?;
        self.docker.remove_volume(&node.brick_volume).await?;
        Ok(killed)
    }

    /// The host name of storage host `i`.
    pub fn host(&self, i: usize) -> Option<&str> {
        self.nodes.get(i).map(|n| n.host.as_str())
    }

    /// Storage hosts still serving.
    pub fn nodes_alive(&self) -> usize {
        self.nodes.iter().filter(|n| n.alive).count()
    }

    /// Whether a storage host was lost: the volume serves, but with fewer
    /// bricks than it was built with.
    pub fn degraded(&self) -> bool {
        self.nodes.iter().any(|n| !n.alive)
    }

    /// Bricks online, as the first live storage host reports them.
    pub async fn bricks_online(&self) -> Result<usize, GlusterError> {
        let i = self.nodes.iter().position(|n| n.alive).ok_or(GlusterError::NoNode)?;
        Ok(bricks_online(&self.gluster(i, &["volume", "status", VOLUME]).await?))
    }

    /// Unmounts the client, removes the storage hosts, their bricks and
    /// the network. Containers using the mount must be gone.
    /// Every step is tried even when one fails (the first failure is
    /// returned), so that one stuck object does not keep the others; the
    /// run's cleanup finds what is left by label.
    pub async fn teardown(mut self) -> Result<(), GlusterError> {
        let mut torn = self.unmount();
        for node in &self.nodes {
            let container = self.docker.remove_container(&node.container).await;
            let volume = self.docker.remove_volume_if_present(&node.brick_volume).await.map(drop);
            torn = torn.and(container.map_err(Into::into)).and(volume.map_err(Into::into));
        }
        let network = self.docker.remove_network_if_present(&self.network).await.map(drop);
        torn.and(network.map_err(Into::into))
    }
}

/// Bricks shown online (`Y`) in `gluster volume status`: lines of the form
/// `Brick <host>:<path>  <tcp port>  <rdma port>  <online>  <pid>`.
fn bricks_online(status: &str) -> usize {
    status
        .lines()
        .filter(|l| l.starts_with("Brick "))
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= 3 && words[words.len() - 2] == "Y"
        })
        .count()
}

/// Whether the FUSE client's mount helper is on this host.
pub fn client_installed() -> bool {
    ["/sbin/mount.glusterfs", "/usr/sbin/mount.glusterfs"].iter().any(|p| Path::new(p).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bricks_online_counts_the_y_column() {
        let status = "\
Status of volume: crashlab
Gluster process                             TCP Port  RDMA Port  Online  Pid
------------------------------------------------------------------------------
Brick 172.18.0.2:/bricks/brick              54321     0          Y       98
Brick 172.18.0.3:/bricks/brick              N/A       N/A        N       N/A
Brick 172.18.0.4:/bricks/brick              50111     0          Y       97
Self-heal Daemon on localhost               N/A       N/A        Y       120
";
        assert_eq!(bricks_online(status), 2);
        assert_eq!(bricks_online(""), 0);
    }
}
