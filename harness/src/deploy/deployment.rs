//! A deployment: the workload's container on a strategy's storage, as an
//! operator would run it. It can be killed, stopped, removed and created
//! again on the same storage, and it knows the loopback port the server
//! answers on. A replicated deployment is the primary's, on a private
//! network, with the other hosts in its [`Cluster`].

use crate::deploy::hosts::Cluster;
use crate::deploy::hosts::peers::Peers;
use crate::deploy::topology::Topology;
use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::storage::Storage;
use crate::text::folded;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use crashlab_workloads::ContainerSpec;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("use the deployment: it has no container (it was removed)")]
    NoContainer,
    #[error("pack {} for upload into the container", path.display())]
    Archive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A tar archive holding `file` under its own name, with its mode.
pub(crate) fn tar_of(file: &Path) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    // Docker's extractor rejects GNU sparse entries, which the tar crate
    // writes for files with holes (a linker's output can have them).
    builder.sparse(false);
    let name = file.file_name().ok_or_else(|| std::io::Error::other("path has no file name"))?;
    builder.append_path_with_name(file, name)?;
    builder.into_inner()
}

/// The setting a server flag names, in one spelling for both engines:
/// MariaDB's `--rpl-semi-sync-master-timeout=300` and PostgreSQL's
/// `--wal-level=replica` or `-c wal_level=replica` name
/// `rpl_semi_sync_master_timeout` and `wal_level`. `args[i]` and the
/// argument after it (a `-c`'s setting) are read; `None` for an argument
/// that names no setting, and the count of arguments it spans.
fn setting_at(args: &[String], i: usize) -> (Option<String>, usize) {
    let arg = args[i].as_str();
    let (name, span) = if arg == "-c" {
        match args.get(i + 1) {
            Some(next) => (next.as_str(), 2),
            None => return (None, 1),
        }
    } else if let Some(rest) = arg.strip_prefix("--") {
        (rest, 1)
    } else if let Some(rest) = arg.strip_prefix("-c") {
        (rest, 1)
    } else {
        return (None, 1);
    };
    let mut name = name.split('=').next().unwrap_or_default();
    if span == 1 && args[i].starts_with("--") {
        // MariaDB's option prefixes name the same setting: `--skip-log-bin`
        // and `--disable-log-bin` set `log_bin` as `--log-bin` does.
        for prefix in ["skip-", "skip_", "disable-", "disable_", "enable-", "enable_", "loose-", "loose_"] {
            name = name.strip_prefix(prefix).unwrap_or(name);
        }
    }
    if name.is_empty() {
        return (None, span);
    }
    (Some(name.replace('-', "_").to_ascii_lowercase()), span)
}

/// The settings `args` sets, each with the arguments that set it.
fn settings_of(args: &[String]) -> Vec<(String, Vec<String>)> {
    let mut found = vec![];
    let mut i = 0;
    while i < args.len() {
        let (name, span) = setting_at(args, i);
        if let Some(name) = name {
            found.push((name, args[i..(i + span).min(args.len())].to_vec()));
        }
        i += span;
    }
    found
}

/// Splits crashlab's `defaults` into those to add after `cmd` and, for
/// each one `cmd` already sets, `cmd`'s own setting of it (which wins).
pub(crate) fn merge_server_args(cmd: &[String], defaults: Vec<String>) -> (Vec<String>, Vec<String>) {
    let set = settings_of(cmd);
    let (mut added, mut kept) = (vec![], vec![]);
    let mut i = 0;
    while i < defaults.len() {
        let (name, span) = setting_at(&defaults, i);
        let args = &defaults[i..(i + span).min(defaults.len())];
        match name.and_then(|name| set.iter().rev().find(|(n, _)| *n == name)) {
            Some((_, user)) => {
                let user = user.join(" ");
                if !kept.contains(&user) {
                    kept.push(user);
                }
            }
            None => added.extend_from_slice(args),
        }
        i += span;
    }
    (added, kept)
}

/// One cell's container, possibly replaced over the cell's life.
pub struct Deployment {
    docker: Docker,
    run: RunContext,
    spec: ContainerSpec,
    storage: Storage,
    name: String,
    generation: u32,
    container: Option<String>,
    port: Option<u16>,
    /// Occurrences of the ready line in the log before the last start.
    ready_mark: usize,
    /// Host files copied into every new container before it starts:
    /// (directory in the container, file on the host).
    uploads: Vec<(String, PathBuf)>,
    /// The image new containers are created from instead of the spec's:
    /// a committed image loaded back after a host loss (`commit-image`).
    image: Option<String>,
    /// A host port chosen once, so that the server answers on the same
    /// address after every start (see [`Deployment::with_pinned_port`]).
    pinned_port: Option<u16>,
    /// CPU and memory limits of every container it creates.
    limits: Limits,
    /// The private network its containers join instead of the default
    /// bridge, and the host name they answer to there.
    network: Option<(String, String)>,
    /// The hosts it spans, and what losing one does.
    topology: Topology,
    /// Host directories every container binds read-write: (on the host,
    /// in the container). Storage off the host that the server writes to,
    /// such as a backup repository.
    shared_dirs: Vec<(String, String)>,
}

/// Resource limits of a workload container (`[matrix] cpus` and `memory`),
/// so that cells run side by side do not distort each other's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// CPUs, as Docker's `--cpus` (a CFS quota, not a pinned core).
    pub cpus: Option<f64>,
    /// Bytes of memory; swap is not allowed beyond it.
    pub memory: Option<u64>,
}

impl Deployment {
    pub fn new(docker: Docker, run: RunContext, spec: ContainerSpec, storage: Storage, name: String) -> Deployment {
        let topology = Topology::of(&storage);
        Deployment {
            docker,
            run,
            spec,
            storage,
            name,
            generation: 0,
            container: None,
            port: None,
            ready_mark: 0,
            uploads: vec![],
            image: None,
            pinned_port: None,
            limits: Limits::default(),
            network: None,
            topology,
            shared_dirs: vec![],
        }
    }

    /// Limits every container this deployment creates.
    pub fn with_limits(mut self, limits: Limits) -> Deployment {
        self.limits = limits;
        self
    }

    /// Attaches every container of the deployment to the private
    /// `network` as host `alias`, where its peers find it by that name.
    pub fn on_network(mut self, network: &str, alias: &str) -> Deployment {
        self.network = Some((network.to_owned(), alias.to_owned()));
        self
    }

    /// Adds crashlab's default server flags after the workload's own, but
    /// none that the command already sets: the scenario's `server-args`
    /// win over crashlab's defaults. Returns the deployment and the
    /// user's flags that stood in for a default, as the command has them.
    pub fn with_default_args(mut self, defaults: Vec<String>) -> (Deployment, Vec<String>) {
        let (added, kept) = merge_server_args(&self.spec.cmd, defaults);
        self.spec.cmd.extend(added);
        (self, kept)
    }

    /// Binds the host directory `source` read-write at `target` in every
    /// container it creates.
    pub fn with_shared_dir(mut self, source: &Path, target: &str) -> Deployment {
        self.shared_dirs.push((source.display().to_string(), target.to_owned()));
        self
    }

    /// The base of its containers' names.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host names of this deployment and of every other member of its
    /// cluster, in order; empty for a deployment on no private network.
    pub fn hosts(&self) -> Vec<&str> {
        let all = std::iter::once(self).chain(self.peers().map(Peers::members).unwrap_or_default());
        all.filter_map(|m| m.network().map(|(_, h)| h)).collect()
    }

    /// The private network and the host name there, when it has one.
    pub fn network(&self) -> Option<(&str, &str)> {
        self.network.as_ref().map(|(n, a)| (n.as_str(), a.as_str()))
    }

    /// The hosts it spans.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(crate) fn topology_mut(&mut self) -> &mut Topology {
        &mut self.topology
    }

    /// The other hosts of a replicated deployment.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.topology {
            Topology::Replicated(cluster) => Some(cluster),
            _ => None,
        }
    }

    pub fn cluster_mut(&mut self) -> Option<&mut Cluster> {
        match &mut self.topology {
            Topology::Replicated(cluster) => Some(cluster),
            _ => None,
        }
    }

    pub(crate) fn set_cluster(&mut self, cluster: Cluster) {
        self.topology = Topology::Replicated(Box::new(cluster));
    }

    /// The other members of the engine's own cluster.
    pub fn peers(&self) -> Option<&Peers> {
        match &self.topology {
            Topology::Peers(peers) => Some(peers),
            _ => None,
        }
    }

    pub(crate) fn peers_mut(&mut self) -> Option<&mut Peers> {
        match &mut self.topology {
            Topology::Peers(peers) => Some(peers),
            _ => None,
        }
    }

    pub(crate) fn set_peers(&mut self, peers: Peers) {
        self.topology = Topology::Peers(Box::new(peers));
    }

    pub(crate) fn set_topology(&mut self, topology: Topology) {
        self.topology = topology;
    }

    /// The other members of a cluster, which a fault that strikes every
    /// host at once acts on besides this one; none for other topologies.
    pub fn members_mut(&mut self) -> &mut [Deployment] {
        match &mut self.topology {
            Topology::Peers(peers) => peers.members_mut(),
            _ => &mut [],
        }
    }

    /// `step` on this host, then on every other member of its cluster, in
    /// order; the first failure ends it. One host without a cluster.
    pub async fn on_every_host<T>(
        &mut self,
        mut step: impl AsyncFnMut(&mut Deployment) -> Result<T, DeploymentError>,
    ) -> Result<(), DeploymentError> {
        step(self).await?;
        for member in self.members_mut() {
            step(member).await?;
        }
        Ok(())
    }

    /// The fault filesystems under this host's data and every other
    /// member's, this host's first.
    pub fn fault_mounts_mut(&mut self) -> Vec<&mut crate::storage::faultmount::FaultMount> {
        let Deployment { storage, topology, .. } = self;
        let members = match topology {
            Topology::Peers(peers) => peers.members_mut(),
            _ => &mut [],
        };
        storage.faultfs_mut().into_iter().chain(members.iter_mut().filter_map(|m| m.storage.faultfs_mut())).collect()
    }

    /// Whether the deployment lost a host (and failed over) or a storage
    /// host: it serves, but with less than it was built with, and is
    /// rebuilt before another cycle runs on it.
    pub fn degraded(&self) -> bool {
        self.cluster().is_some_and(Cluster::lost_a_host)
            || self.peers().is_some_and(Peers::lost_a_host)
            || self.storage.degraded()
    }

    pub fn storage_mut(&mut self) -> &mut Storage {
        &mut self.storage
    }

    /// Failover: the replica's deployment becomes this one (the service),
    /// and the lost primary's is kept in the cluster until teardown.
    /// False when there is no replica to promote.
    pub(crate) fn promote_replica(&mut self) -> bool {
        let Some(mut replica) = self.cluster_mut().and_then(Cluster::take_replica) else { return false };
        std::mem::swap(self, &mut replica);
        // The replica's deployment, now this one, takes over the hosts.
        self.topology = std::mem::replace(&mut replica.topology, Topology::Single);
        self.cluster_mut().expect("moved above").keep_lost(replica);
        true
    }

    /// Publishes the server on one host port for the deployment's whole
    /// life, rather than one the daemon picks at each start: load clients
    /// that reconnect after the harness stopped the server on purpose
    /// (`backup-stopped`) find it again. The port is one the kernel had
    /// free a moment ago.
    ///
    /// Cells run side by side (`--jobs`) each probe for a port; a port this
    /// process already pinned is never handed out again, so two cells
    /// cannot be given the same one between the probe and the daemon's
    /// bind.
    pub fn with_pinned_port(mut self) -> std::io::Result<Deployment> {
        static PINNED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        let mut pinned = PINNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for _ in 0..64 {
            let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let port = probe.local_addr()?.port();
            if !pinned.contains(&port) {
                pinned.push(port);
                self.pinned_port = Some(port);
                return Ok(self);
            }
        }
        Err(std::io::Error::other("the kernel kept offering ports already pinned by this run"))
    }

    /// Copies each host file into the given directory of every container
    /// this deployment creates, before the container starts (the agent a
    /// workload runs as its main process must be there when it starts).
    pub fn with_uploads(mut self, uploads: Vec<(String, PathBuf)>) -> Deployment {
        self.uploads = uploads;
        self
    }

    /// Creates every later container from `image` rather than the
    /// workload's own (a committed image loaded back after a host loss).
    pub fn set_image(&mut self, image: String) {
        self.image = Some(image);
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn run(&self) -> &RunContext {
        &self.run
    }

    /// The host files copied into each of its containers.
    pub fn uploads(&self) -> &[(String, PathBuf)] {
        &self.uploads
    }

    /// Destroys the data, as a lost host would (`host-loss`). The container
    /// must be removed first.
    pub async fn lose_storage(&mut self) -> Result<(), crate::storage::StorageError> {
        self.storage.lose(&self.docker).await
    }

    /// New storage after [`Deployment::lose_storage`]; see
    /// [`Storage::reprovision`].
    pub async fn reprovision(&mut self, from_snapshot: Option<&str>) -> Result<(), crate::storage::StorageError> {
        self.storage.reprovision(&self.docker, &self.run, from_snapshot).await
    }

    /// Lets the container's frozen processes run again.
    pub async fn unpause(&mut self) -> Result<(), DeploymentError> {
        let id = self.id()?.to_owned();
        self.docker.unpause(&id).await?;
        Ok(())
    }

    /// The fault filesystem under the data, if the data is on one.
    pub fn faultfs_mut(&mut self) -> Option<&mut crate::storage::faultmount::FaultMount> {
        self.storage.faultfs_mut()
    }

    pub fn container_id(&self) -> Option<&str> {
        self.container.as_deref()
    }

    /// Creates a new container on the deployment's storage.
    pub async fn create(&mut self) -> Result<(), DeploymentError> {
        self.generation += 1;
        let port_key = format!("{}/tcp", self.spec.port);
        // Published on loopback only, on a port the daemon picks: the
        // harness never talks to the bridge network's private addresses.
        let host_port = self.pinned_port.map(|p| p.to_string()).unwrap_or_default();
        let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(host_port) };
        let config = ContainerCreateBody {
            image: Some(self.image().to_owned()),
            user: self.spec.user.clone(),
            hostname: self.network.as_ref().map(|(_, alias)| alias.clone()),
            cmd: (!self.spec.cmd.is_empty()).then(|| self.spec.cmd.clone()),
            entrypoint: self.spec.entrypoint.clone(),
            stop_signal: self.spec.stop_signal.clone(),
            env: Some(self.spec.env.clone()),
            labels: Some(self.run.labels()),
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(HostConfig {
                mounts: Some(self.mounts()),
                port_bindings: Some(HashMap::from([(port_key, Some(vec![binding]))])),
                nano_cpus: self.limits.cpus.map(|c| (c * 1e9).round() as i64),
                memory: self.limits.memory.map(|m| m as i64),
                // Equal to `memory`: no swap on top, so the limit is the
                // limit.
                memory_swap: self.limits.memory.map(|m| m as i64),
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = format!("{}-{}", self.name, self.generation);
        let id = self.docker.create_container(&name, config).await?;
        self.container = Some(id.clone());
        self.port = None;
        if let Some((network, alias)) = &self.network {
            // Beside the default bridge, which publishes the port and
            // resolves no names: hosts reach one another only here.
            self.docker.connect_network(network, &id, alias).await?;
        }
        for (dest_dir, file) in &self.uploads {
            let archive = tar_of(file).map_err(|source| DeploymentError::Archive { path: file.clone(), source })?;
            self.docker.upload(&id, dest_dir, archive.into()).await?;
        }
        Ok(())
    }

    /// The image its containers are created from.
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or(&self.spec.image)
    }

    /// What every container of the deployment mounts: the data, the user's
    /// files read-only, and the shared directories.
    pub fn mounts(&self) -> Vec<bollard::models::Mount> {
        let mut mounts = self.storage.mounts(&self.run, &self.spec.data_dir);
        // The user's own files (a configuration a Compose file binds in),
        // read-only: a run must never change them.
        mounts.extend(self.spec.binds.iter().map(|b| bollard::models::Mount {
            source: Some(b.source.clone()),
            target: Some(b.target.clone()),
            typ: Some(bollard::models::MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        }));
        mounts.extend(self.shared_dirs.iter().map(|(source, target)| bollard::models::Mount {
            source: Some(source.clone()),
            target: Some(target.clone()),
            typ: Some(bollard::models::MountType::BIND),
            read_only: Some(false),
            ..Default::default()
        }));
        mounts
    }

    fn id(&self) -> Result<&str, DeploymentError> {
        self.container.as_deref().ok_or(DeploymentError::NoContainer)
    }

    /// Starts the container and reads the port it was published on.
    pub async fn start(&mut self) -> Result<(), DeploymentError> {
        let id = self.id()?.to_owned();
        // The ready line counts only if it appears after this start: the
        // log of a restarted container still holds the earlier ones.
        self.ready_mark = match &self.spec.ready_log {
            Some(line) => self.docker.logs_all(&id).await?.matches(line.as_str()).count(),
            None => 0,
        };
        self.docker.start(&id).await?;
        self.port = Some(self.docker.published_port(&id, self.spec.port).await?);
        Ok(())
    }

    pub async fn kill(&mut self) -> Result<(), DeploymentError> {
        let id = self.id()?.to_owned();
        self.docker.kill(&id, "SIGKILL").await?;
        self.port = None;
        Ok(())
    }

    /// SIGKILL, unless the server already exited; whether it was running.
    pub async fn kill_if_running(&mut self) -> Result<bool, DeploymentError> {
        if !self.is_running().await? {
            self.port = None;
            return Ok(false);
        }
        match self.kill().await {
            Ok(()) => Ok(true),
            // It died between the look and the kill.
            Err(_) if !self.is_running().await? => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Freezes every process of the container (cgroup freezer).
    pub async fn pause(&mut self) -> Result<(), DeploymentError> {
        let id = self.id()?.to_owned();
        self.docker.pause(&id).await?;
        Ok(())
    }

    pub async fn stop(&mut self, timeout_s: i32) -> Result<(), DeploymentError> {
        let id = self.id()?.to_owned();
        self.docker.stop(&id, timeout_s).await?;
        self.port = None;
        Ok(())
    }

    /// Removes the container (and its anonymous volumes), as a redeploy does.
    pub async fn remove(&mut self) -> Result<(), DeploymentError> {
        if let Some(id) = self.container.take() {
            self.docker.remove_container(&id).await?;
        }
        self.port = None;
        Ok(())
    }

    /// Where the server answers, while the container runs.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.port.map(|p| SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
    }

    /// Whether the server printed its ready line since the last start;
    /// always true when the workload names none.
    pub async fn ready_log_seen(&self) -> Result<bool, DeploymentError> {
        let Some(line) = &self.spec.ready_log else { return Ok(true) };
        let logs = self.docker.logs_all(self.id()?).await?;
        Ok(logs.matches(line.as_str()).count() > self.ready_mark)
    }

    /// Whether the container's process is still running; `false` once it
    /// exited (e.g. the server refused to start).
    pub async fn is_running(&self) -> Result<bool, DeploymentError> {
        let inspect = self.docker.inspect(self.id()?).await?;
        Ok(inspect.state.and_then(|s| s.running).unwrap_or(false))
    }

    /// The server's newest `max` error lines, by `workload`'s log format,
    /// over the container's recent output (every start of it), joined on
    /// one line and cut to `chars`; `None` when it printed none.
    pub async fn server_errors(
        &self,
        workload: &dyn crashlab_workloads::Workload,
        max: usize,
        chars: usize,
    ) -> Option<String> {
        let errors = workload.server_errors(&self.logs_tail(400).await, max);
        (!errors.is_empty()).then(|| folded(&errors.join(" / "), chars))
    }

    /// The container's last lines of output, for a verdict's detail.
    pub async fn logs_tail(&self, lines: usize) -> String {
        match self.container.as_deref() {
            Some(id) => self.docker.logs_tail(id, lines).await.unwrap_or_else(|e| format!("(no logs: {e})")),
            None => String::new(),
        }
    }

    /// Runs `workload`'s in-container integrity tool, if it has one and the
    /// dataset is there, and folds a failure into the observation's engine
    /// check. `Err` only when the tool could not be run at all.
    /// Reads the data back through `workload`, runs the engine's own
    /// integrity tool on it and checks it against `log`: the verify step of
    /// a cycle, of a crash state and of a second look. `Err` says what
    /// could not be done.
    pub async fn verify(
        &self,
        workload: &dyn crashlab_workloads::Workload,
        addr: SocketAddr,
        log: &crashlab_workloads::AckLog,
        accounts: u32,
    ) -> Result<crate::checker::Check, String> {
        let mut observation = workload
            .observe(addr)
            .await
            .map_err(|e| format!("could not read the data back: {}", crate::text::error_chain(&e)))?;
        self.run_engine_check(workload, &mut observation)
            .await
            .map_err(|e| format!("could not run the engine's integrity tool: {e}"))?;
        if let crashlab_workloads::Observation::Present { engine_check, engine_notes, .. } = &mut observation
            && let Err(failure) = engine_check
            && let Some(note) = workload.repaired_by_design(failure, &self.logs_tail(400).await)
        {
            *engine_check = Ok(());
            engine_notes.push(note);
        }
        Ok(crate::checker::check(log, &observation, accounts))
    }

    pub async fn run_engine_check(
        &self,
        workload: &dyn crashlab_workloads::Workload,
        observation: &mut crashlab_workloads::Observation,
    ) -> Result<(), String> {
        use crashlab_workloads::Observation;
        let (Some(cmd), Observation::Present { engine_check, .. }) = (workload.engine_check_command(), observation)
        else {
            return Ok(());
        };
        let id = self.container_id().ok_or("the deployment has no container")?;
        let run = self.docker.exec(id, &cmd).await.map_err(|e| crate::text::error_chain(&e))?;
        if run.exit_code != Some(0) {
            let output: String = run.output.split_whitespace().collect::<Vec<_>>().join(" ");
            let tail: String = output.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
            let failed = format!("`{}` exited with {:?}: {tail}", cmd.join(" "), run.exit_code);
            *engine_check = match engine_check {
                Ok(()) => Err(failed),
                Err(e) => Err(format!("{e}; {failed}")),
            };
        }
        Ok(())
    }

    /// Gives up the deployment without removing anything, for `--keep`.
    /// A fault filesystem under it is still unmounted when this process
    /// exits: FUSE mounts cannot outlive their server.
    pub fn leak(self) {
        tracing::info!("keeping container {:?} and its storage", self.container);
        if let Topology::Replicated(cluster) = self.topology {
            cluster.leak();
        }
    }

    /// Removes the container and the storage, then the other hosts and
    /// their network.
    pub async fn teardown(mut self) -> Result<(), crate::storage::StorageError> {
        let topology = std::mem::replace(&mut self.topology, Topology::Single);
        let mut torn = Ok(());
        if let Some(id) = self.container.take() {
            torn = self.docker.remove_container(&id).await.map_err(Into::into);
        }
        if torn.is_ok() {
            torn = self.storage.teardown(&self.docker).await;
        }
        let rest = match topology {
            Topology::Replicated(cluster) => cluster.teardown(&self.docker).await,
            Topology::Peers(peers) => peers.teardown(&self.docker).await,
            Topology::Single | Topology::Shared(_) => Ok(()),
        };
        torn.and(rest)
    }
}

#[cfg(test)]
mod server_args_tests {
    use super::merge_server_args;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_flag_the_scenario_sets_is_not_overridden_by_a_default() {
        let cmd = strings(&["mariadbd", "--innodb-flush-log-at-trx-commit=1", "--rpl_semi_sync_master_timeout=300"]);
        let defaults = strings(&["--log-bin=bin", "--rpl-semi-sync-master-timeout=600000", "--skip-slave-start"]);
        let (added, kept) = merge_server_args(&cmd, defaults);
        assert_eq!(added, strings(&["--log-bin=bin", "--skip-slave-start"]));
        assert_eq!(kept, strings(&["--rpl_semi_sync_master_timeout=300"]));
    }

    #[test]
    fn a_setting_the_scenario_turns_off_is_not_turned_on_by_a_default() {
        let cmd = strings(&["mariadbd", "--skip-log-bin", "--loose-server-id=7"]);
        let defaults = strings(&["--log-bin=mysql-bin", "--server-id=1", "--binlog-format=ROW"]);
        let (added, kept) = merge_server_args(&cmd, defaults);
        assert_eq!(added, strings(&["--binlog-format=ROW"]));
        assert_eq!(kept, strings(&["--skip-log-bin", "--loose-server-id=7"]));
    }

    #[test]
    fn postgres_settings_match_in_either_spelling() {
        let cmd = strings(&["postgres", "-c", "wal_sender_timeout=30s", "--hot-standby=off"]);
        let defaults = strings(&["-c", "wal_level=replica", "-c", "hot_standby=on", "-c", "wal_sender_timeout=2s"]);
        let (added, kept) = merge_server_args(&cmd, defaults);
        assert_eq!(added, strings(&["-c", "wal_level=replica"]));
        assert_eq!(kept, strings(&["--hot-standby=off", "-c wal_sender_timeout=30s"]));
    }

    #[test]
    fn without_user_settings_every_default_is_added() {
        let defaults = strings(&["--log-bin=bin", "-c", "wal_level=replica", "plain"]);
        let (added, kept) = merge_server_args(&strings(&["mariadbd"]), defaults);
        assert_eq!(added, strings(&["--log-bin=bin", "-c", "wal_level=replica", "plain"]));
        assert!(kept.is_empty());
    }
}
