//! The one door to Docker. Every call to the daemon goes through [`Docker`],
//! and every failure names the operation and its object, so an error reads
//! "failed to start container crashlab-…: …". No other module uses bollard.
//!
//! A client [`Docker::journaled`] to a run writes each container, volume,
//! network and committed image into the run's journal before it asks the daemon to create
//! it, so that no creation site can forget to.

use crate::run::journal::{Entry, Journal, JournalError};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, EndpointSettings, ImageInspect, Network,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, SystemInfo, SystemVersion, Volume,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, DownloadFromContainerOptionsBuilder,
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;

type Source = bollard::errors::Error;

/// A failed Docker operation. Messages read well after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("reach the Docker daemon at {host}")]
    Connect {
        host: String,
        #[source]
        source: Source,
    },
    #[error("create container {name}")]
    CreateContainer {
        name: String,
        #[source]
        source: Source,
    },
    #[error("start container {id}")]
    StartContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("kill container {id}")]
    KillContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("stop container {id}")]
    StopContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("remove container {id}")]
    RemoveContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("inspect container {id}")]
    InspectContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("pause container {id}")]
    PauseContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("unpause container {id}")]
    UnpauseContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("read the logs of container {id}")]
    Logs {
        id: String,
        #[source]
        source: Source,
    },
    #[error("list containers labelled {label}")]
    ListContainers {
        label: String,
        #[source]
        source: Source,
    },
    #[error("create volume {name}")]
    CreateVolume {
        name: String,
        #[source]
        source: Source,
    },
    #[error("remove volume {name}")]
    RemoveVolume {
        name: String,
        #[source]
        source: Source,
    },
    #[error("inspect volume {name}")]
    InspectVolume {
        name: String,
        #[source]
        source: Source,
    },
    #[error("list volumes labelled {label}")]
    ListVolumes {
        label: String,
        #[source]
        source: Source,
    },
    #[error("inspect image {tag}")]
    InspectImage {
        tag: String,
        #[source]
        source: Source,
    },
    #[error("import image {tag}")]
    ImportImage {
        tag: String,
        #[source]
        source: Source,
    },
    #[error("commit container {id} to image {tag}")]
    CommitContainer {
        id: String,
        tag: String,
        #[source]
        source: Source,
    },
    #[error("save image {tag} to an archive")]
    SaveImage {
        tag: String,
        #[source]
        source: Source,
    },
    #[error("load images from the archive {}", path.display())]
    LoadImage {
        path: std::path::PathBuf,
        #[source]
        source: Source,
    },
    #[error("remove image {tag}")]
    RemoveImage {
        tag: String,
        #[source]
        source: Source,
    },
    #[error("list images labelled {label}")]
    ListImages {
        label: String,
        #[source]
        source: Source,
    },
    #[error("export the file system of container {id}")]
    ExportContainer {
        id: String,
        #[source]
        source: Source,
    },
    #[error("create an exec of `{command}` in container {id}")]
    CreateExec {
        id: String,
        command: String,
        #[source]
        source: Source,
    },
    #[error("run `{command}` in container {id}")]
    StartExec {
        id: String,
        command: String,
        #[source]
        source: Source,
    },
    #[error("read the exit code of `{command}` in container {id}")]
    InspectExec {
        id: String,
        command: String,
        #[source]
        source: Source,
    },
    #[error("upload files to {dest} in container {id}")]
    Upload {
        id: String,
        dest: String,
        #[source]
        source: Source,
    },
    #[error("copy {path} out of container {id}")]
    Download {
        id: String,
        path: String,
        #[source]
        source: Source,
    },
    #[error("write or read the archive {}", path.display())]
    ArchiveFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wait for container {id} to exit")]
    Wait {
        id: String,
        #[source]
        source: Source,
    },
    #[error("list networks labelled {label}")]
    ListNetworks {
        label: String,
        #[source]
        source: Source,
    },
    #[error("create network {name}")]
    CreateNetwork {
        name: String,
        #[source]
        source: Source,
    },
    #[error("connect container {id} to network {network}")]
    ConnectNetwork {
        id: String,
        network: String,
        #[source]
        source: Source,
    },
    #[error("disconnect container {id} from network {network}")]
    DisconnectNetwork {
        id: String,
        network: String,
        #[source]
        source: Source,
    },
    #[error("remove network {name}")]
    RemoveNetwork {
        name: String,
        #[source]
        source: Source,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("read the daemon's version")]
    Version(#[source] Source),
    #[error("read the daemon's info")]
    Info(#[source] Source),
    #[error("container {id} has no published port for {port}/tcp")]
    NoPublishedPort { id: String, port: u16 },
}

impl DockerError {
    /// True when the daemon answered 404: the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.source_error().is_some_and(|e| matches!(e, Source::DockerResponseServerError { status_code: 404, .. }))
    }

    /// True when the daemon answered 409: e.g. a volume still in use.
    pub fn is_conflict(&self) -> bool {
        self.source_error().is_some_and(|e| matches!(e, Source::DockerResponseServerError { status_code: 409, .. }))
    }

    /// True when the daemon answered 304: already in the requested state.
    pub fn is_not_modified(&self) -> bool {
        self.source_error().is_some_and(|e| matches!(e, Source::DockerResponseServerError { status_code: 304, .. }))
    }

    fn source_error(&self) -> Option<&Source> {
        std::error::Error::source(self).and_then(|s| s.downcast_ref::<Source>())
    }
}

/// What a command run in a container ([`Docker::exec`]) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the daemon did not report one.
    pub exit_code: Option<i64>,
    /// Its stdout and stderr, interleaved as they came.
    pub output: String,
}

/// Where the daemon is, as the user configured it.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned())
}

/// A connected, version-negotiated Docker client.
#[derive(Clone)]
pub struct Docker {
    inner: bollard::Docker,
    /// The run whose creations are journaled, if any.
    journal: Option<Arc<Journal>>,
}

impl Docker {
    /// Connects as `DOCKER_HOST` says (or the default socket), negotiates
    /// the API version down to the daemon's, and pings it.
    pub async fn connect() -> Result<Docker, DockerError> {
        let host = docker_host();
        let connect = |source| DockerError::Connect { host: host.clone(), source };
        let inner = bollard::Docker::connect_with_defaults().map_err(connect)?;
        let inner = inner.negotiate_version().await.map_err(connect)?;
        inner.ping().await.map_err(connect)?;
        Ok(Docker { inner, journal: None })
    }

    /// The same client, writing every container, volume and network it
    /// creates into `journal` first.
    pub fn journaled(&self, journal: Arc<Journal>) -> Docker {
        Docker { inner: self.inner.clone(), journal: Some(journal) }
    }

    fn record(&self, entry: Entry) -> Result<(), DockerError> {
        match &self.journal {
            Some(journal) => Ok(journal.record(&entry)?),
            None => Ok(()),
        }
    }

    pub fn api_version(&self) -> String {
        self.inner.client_version().to_string()
    }

    pub async fn version(&self) -> Result<SystemVersion, DockerError> {
        self.inner.version().await.map_err(DockerError::Version)
    }

    pub async fn info(&self) -> Result<SystemInfo, DockerError> {
        self.inner.info().await.map_err(DockerError::Info)
    }

    /// The image, or `None` when the daemon does not have it.
    pub async fn image(&self, tag: &str) -> Result<Option<ImageInspect>, DockerError> {
        match self.inner.inspect_image(tag).await {
            Ok(image) => Ok(Some(image)),
            Err(source) => {
                let err = DockerError::InspectImage { tag: tag.to_owned(), source };
                if err.is_not_found() { Ok(None) } else { Err(err) }
            }
        }
    }

    /// Imports a root filesystem tar stream as image `tag`, applying
    /// Dockerfile-style `changes` (`ENTRYPOINT`, `ENV`, `LABEL`).
    pub async fn import_image(
        &self,
        tag: &str,
        changes: Vec<String>,
        rootfs: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), DockerError> {
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options =
            CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(version).changes(changes).build();
        let body = bollard::body_try_stream(rootfs);
        self.inner
            .create_image(Some(options), Some(body), None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|source| DockerError::ImportImage { tag: tag.to_owned(), source })?;
        Ok(())
    }

    /// Commits container `id`'s filesystem (its writable layer over its
    /// image) and configuration as image `tag` (`repo:version`), paused
    /// by the daemon for the commit so the layer does not change under it;
    /// returns the image id. The image carries the container's labels.
    pub async fn commit_container(&self, id: &str, tag: &str) -> Result<String, DockerError> {
        self.record(Entry::Image(tag.to_owned()))?;
        let (repo, version) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
        let options = bollard::query_parameters::CommitContainerOptionsBuilder::default()
            .container(id)
            .repo(repo)
            .tag(version)
            .pause(true)
            .build();
        let committed = self
            .inner
            .commit_container(options, bollard::models::ContainerConfig::default())
            .await
            .map_err(|source| DockerError::CommitContainer { id: id.to_owned(), tag: tag.to_owned(), source })?;
        Ok(committed.id)
    }

    /// Writes image `tag` with all its layers to a tar archive at `dest`,
    /// as `docker image save` does; returns the archive's size.
    pub async fn save_image(&self, tag: &str, dest: &std::path::Path) -> Result<u64, DockerError> {
        use tokio::io::AsyncWriteExt;
        let file_err = |source| DockerError::ArchiveFile { path: dest.to_owned(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_err)?;
        let mut stream = std::pin::pin!(self.inner.export_image(tag));
        let mut bytes = 0u64;
        while let Some(chunk) =
            stream.try_next().await.map_err(|source| DockerError::SaveImage { tag: tag.to_owned(), source })?
        {
            file.write_all(&chunk).await.map_err(file_err)?;
            bytes += chunk.len() as u64;
        }
        file.flush().await.map_err(file_err)?;
        Ok(bytes)
    }

    /// Loads the image of an archive written by [`Docker::save_image`]
    /// (`docker image load`), under `tag`, the tag it was saved with.
    pub async fn load_image(&self, archive: &std::path::Path, tag: &str) -> Result<(), DockerError> {
        self.record(Entry::Image(tag.to_owned()))?;
        let load_err = |source| DockerError::LoadImage { path: archive.to_owned(), source };
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|source| DockerError::ArchiveFile { path: archive.to_owned(), source })?;
        let chunks = file_chunks(file);
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
        let progress: Vec<_> =
            self.inner.import_image_stream(options, chunks, None).try_collect().await.map_err(load_err)?;
        // The daemon reports a bad archive in the stream, not the status.
        if let Some(error) = progress.iter().find_map(|p| p.error_detail.as_ref().and_then(|e| e.message.clone())) {
            return Err(load_err(Source::DockerStreamError { error }));
        }
        Ok(())
    }

    /// Removes image `tag` (a tag or an id), forcibly; one that is
    /// already gone is not an error. Layers no other image uses go too.
    pub async fn remove_image(&self, tag: &str) -> Result<bool, DockerError> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
        match self.inner.remove_image(tag, Some(options), None).await {
            Ok(_) => Ok(true),
            Err(source) => {
                let err = DockerError::RemoveImage { tag: tag.to_owned(), source };
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    /// The ids of every image carrying `label` (`key` or `key=value`).
    pub async fn images_labelled(&self, label: &str) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = bollard::query_parameters::ListImagesOptionsBuilder::default().filters(&filters).build();
        let images = self
            .inner
            .list_images(Some(options))
            .await
            .map_err(|source| DockerError::ListImages { label: label.to_owned(), source })?;
        Ok(images.into_iter().map(|i| i.id).collect())
    }

    /// The whole file system of container `id` as one tar stream, its
    /// image's layers and its own flattened together (`docker export`).
    pub fn export_container(&self, id: &str) -> impl Stream<Item = Result<Bytes, DockerError>> + Send + 'static {
        let id = id.to_owned();
        self.inner.export_container(&id).map_err(move |source| DockerError::ExportContainer { id: id.clone(), source })
    }

    /// Creates a container and returns its id.
    pub async fn create_container(&self, name: &str, config: ContainerCreateBody) -> Result<String, DockerError> {
        self.record(Entry::Container(name.to_owned()))?;
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .inner
            .create_container(Some(options), config)
            .await
            .map_err(|source| DockerError::CreateContainer { name: name.to_owned(), source })?;
        Ok(created.id)
    }

    pub async fn start(&self, id: &str) -> Result<(), DockerError> {
        match self.inner.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(source) => {
                let err = DockerError::StartContainer { id: id.to_owned(), source };
                if err.is_not_modified() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Sends `signal` (e.g. `SIGKILL`) to the container's main process.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::default().signal(signal).build();
        self.inner
            .kill_container(id, Some(options))
            .await
            .map_err(|source| DockerError::KillContainer { id: id.to_owned(), source })
    }

    /// Graceful stop: SIGTERM, then SIGKILL after `timeout_s`.
    pub async fn stop(&self, id: &str, timeout_s: i32) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::default().t(timeout_s).build();
        match self.inner.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(source) => {
                let err = DockerError::StopContainer { id: id.to_owned(), source };
                if err.is_not_modified() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Freezes the container's processes (the cgroup freezer). The kernel
    /// gives up freezing while a task sleeps where it cannot be frozen (a
    /// FUSE request in flight on a busy machine), and runc reports `unable
    /// to freeze`, having thawed what it froze: that is tried again, a few
    /// times, before it is an error.
    pub async fn pause(&self, id: &str) -> Result<(), DockerError> {
        let mut attempt = 0u64;
        loop {
            match self.inner.pause_container(id).await {
                Ok(()) => return Ok(()),
                Err(source) if attempt < 5 && source.to_string().contains("unable to freeze") => {
                    attempt += 1;
                    tracing::debug!("pause {id}: {source}; trying again ({attempt} of 5)");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(source) => return Err(DockerError::PauseContainer { id: id.to_owned(), source }),
            }
        }
    }

    pub async fn unpause(&self, id: &str) -> Result<(), DockerError> {
        self.inner
            .unpause_container(id)
            .await
            .map_err(|source| DockerError::UnpauseContainer { id: id.to_owned(), source })
    }

    /// Force-removes a container and its anonymous volumes. A container
    /// that is already gone is not an error.
    pub async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        self.remove_container_if_present(id).await.map(drop)
    }

    /// [`Docker::remove_container`], saying whether it was there.
    pub async fn remove_container_if_present(&self, id: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.inner.remove_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(source) => {
                let err = DockerError::RemoveContainer { id: id.to_owned(), source };
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    pub async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, DockerError> {
        self.inner
            .inspect_container(id, None)
            .await
            .map_err(|source| DockerError::InspectContainer { id: id.to_owned(), source })
    }

    /// The loopback port the daemon published for `port`/tcp. It changes on
    /// every start, so it is read again after each one.
    pub async fn published_port(&self, id: &str, port: u16) -> Result<u16, DockerError> {
        let inspect = self.inspect(id).await?;
        inspect
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&format!("{port}/tcp")).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()))
            .ok_or_else(|| DockerError::NoPublishedPort { id: id.to_owned(), port })
    }

    /// Runs `cmd` in the running container `id` (as the image's user) and
    /// waits for it to end.
    pub async fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecOutput, DockerError> {
        let command = cmd.join(" ");
        let options = bollard::exec::CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self.inner.create_exec(id, options).await.map_err(|source| DockerError::CreateExec {
            id: id.to_owned(),
            command: command.clone(),
            source,
        })?;
        let start_err = |source| DockerError::StartExec { id: id.to_owned(), command: command.clone(), source };
        let mut output = String::new();
        if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } =
            self.inner.start_exec(&exec.id, None).await.map_err(start_err)?
        {
            while let Some(chunk) = stream.try_next().await.map_err(start_err)? {
                output.push_str(&chunk.to_string());
            }
        }
        let inspect = self.inner.inspect_exec(&exec.id).await.map_err(|source| DockerError::InspectExec {
            id: id.to_owned(),
            command: command.clone(),
            source,
        })?;
        Ok(ExecOutput { exit_code: inspect.exit_code, output })
    }

    /// Extracts the tar archive `tar` into `dest_dir` of container `id`.
    /// Works on a created container that has not started yet, so a file
    /// can be in place before its entrypoint runs.
    pub async fn upload(&self, id: &str, dest_dir: &str, tar: Bytes) -> Result<(), DockerError> {
        let options = UploadToContainerOptionsBuilder::default().path(dest_dir).build();
        self.inner
            .upload_to_container(id, Some(options), bollard::body_full(tar))
            .await
            .map_err(|source| DockerError::Upload { id: id.to_owned(), dest: dest_dir.to_owned(), source })
    }

    /// Like [`Docker::upload`], streaming the archive from a host file.
    pub async fn upload_file(&self, id: &str, dest_dir: &str, tar: &std::path::Path) -> Result<(), DockerError> {
        let file = tokio::fs::File::open(tar)
            .await
            .map_err(|source| DockerError::ArchiveFile { path: tar.to_owned(), source })?;
        let chunks = file_chunks(file);
        let options = UploadToContainerOptionsBuilder::default().path(dest_dir).build();
        self.inner
            .upload_to_container(id, Some(options), bollard::body_try_stream(chunks))
            .await
            .map_err(|source| DockerError::Upload { id: id.to_owned(), dest: dest_dir.to_owned(), source })
    }

    /// Copies `path` of container `id` (running, paused or stopped) into a
    /// tar archive at `dest` on the host, as `docker cp` does; returns its
    /// size. The archive's top entry is `path`'s last component.
    pub async fn download(&self, id: &str, path: &str, dest: &std::path::Path) -> Result<u64, DockerError> {
        use tokio::io::AsyncWriteExt;
        let file_err = |source| DockerError::ArchiveFile { path: dest.to_owned(), source };
        let mut file = tokio::fs::File::create(dest).await.map_err(file_err)?;
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = std::pin::pin!(self.inner.download_from_container(id, Some(options)));
        let mut bytes = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|source| DockerError::Download {
            id: id.to_owned(),
            path: path.to_owned(),
            source,
        })? {
            file.write_all(&chunk).await.map_err(file_err)?;
            bytes += chunk.len() as u64;
        }
        file.flush().await.map_err(file_err)?;
        Ok(bytes)
    }

    /// Waits until container `id` exits and returns its exit code.
    pub async fn wait(&self, id: &str) -> Result<i64, DockerError> {
        let mut stream = std::pin::pin!(self.inner.wait_container(id, None));
        match stream.try_next().await {
            Ok(response) => Ok(response.map(|r| r.status_code).unwrap_or(0)),
            // bollard reports a non-zero exit as an error carrying the code.
            Err(Source::DockerContainerWaitError { code, .. }) => Ok(code),
            Err(source) => Err(DockerError::Wait { id: id.to_owned(), source }),
        }
    }

    /// The last `lines` lines of the container's output, for error messages.
    pub async fn logs_tail(&self, id: &str, lines: usize) -> Result<String, DockerError> {
        self.logs(id, &lines.to_string()).await
    }

    /// The container's whole output, across all its starts.
    pub async fn logs_all(&self, id: &str) -> Result<String, DockerError> {
        self.logs(id, "all").await
    }

    async fn logs(&self, id: &str, tail: &str) -> Result<String, DockerError> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(tail).build();
        let chunks: Vec<_> = self
            .inner
            .logs(id, Some(options))
            .try_collect()
            .await
            .map_err(|source| DockerError::Logs { id: id.to_owned(), source })?;
        Ok(chunks.iter().map(|c| c.to_string()).collect())
    }

    /// Every container (running or not) carrying `label` (`key` or
    /// `key=value`).
    pub async fn containers_labelled(&self, label: &str) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        self.inner
            .list_containers(Some(options))
            .await
            .map_err(|source| DockerError::ListContainers { label: label.to_owned(), source })
    }

    /// The running containers that mount volume `name`.
    pub async fn running_with_volume(&self, name: &str) -> Result<Vec<ContainerSummary>, DockerError> {
        let filters = HashMap::from([("volume", vec![name])]);
        let options = ListContainersOptionsBuilder::default().filters(&filters).build();
        self.inner
            .list_containers(Some(options))
            .await
            .map_err(|source| DockerError::ListContainers { label: format!("volume={name}"), source })
    }

    /// Creates a volume with the daemon's default (`local`) driver.
    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        self.create_driver_volume(name, labels, "local", HashMap::new()).await
    }

    /// Creates a local-driver volume that binds the host directory `device`
    /// (`type=none,o=bind`): a named volume whose data lives where the
    /// harness chose, e.g. on the fault filesystem.
    pub async fn create_bind_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        device: &str,
    ) -> Result<(), DockerError> {
        let driver_opts = HashMap::from([
            ("type".to_owned(), "none".to_owned()),
            ("o".to_owned(), "bind".to_owned()),
            ("device".to_owned(), device.to_owned()),
        ]);
        self.create_driver_volume(name, labels, "local", driver_opts).await
    }

    /// Creates a volume with any driver and its options, e.g. `local` with
    /// `type=tmpfs,device=tmpfs`, or a plugin's.
    pub async fn create_driver_volume(
        &self,
        name: &str,
        labels: HashMap<String, String>,
        driver: &str,
        driver_opts: HashMap<String, String>,
    ) -> Result<(), DockerError> {
        self.record(Entry::Volume(name.to_owned()))?;
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            driver: Some(driver.to_owned()),
            driver_opts: Some(driver_opts),
            labels: Some(labels),
            ..Default::default()
        };
        self.inner
            .create_volume(request)
            .await
            .map_err(|source| DockerError::CreateVolume { name: name.to_owned(), source })?;
        Ok(())
    }

    /// The scope of a volume as its driver declares it: `local` (one host
    /// reaches it) or `global` (every host of a cluster does).
    pub async fn volume_scope(&self, name: &str) -> Result<String, DockerError> {
        let volume = self
            .inner
            .inspect_volume(name)
            .await
            .map_err(|source| DockerError::InspectVolume { name: name.to_owned(), source })?;
        // Docker takes a driver that declares no scope as local.
        let global = volume.scope == Some(bollard::models::VolumeScopeEnum::GLOBAL);
        Ok(if global { "global" } else { "local" }.to_owned())
    }

    /// Removes a volume; one that is already gone is not an error.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        self.remove_volume_if_present(name).await.map(drop)
    }

    /// [`Docker::remove_volume`], saying whether it was there.
    pub async fn remove_volume_if_present(&self, name: &str) -> Result<bool, DockerError> {
        let options = RemoveVolumeOptionsBuilder::default().force(true).build();
        match self.inner.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(source) => {
                let err = DockerError::RemoveVolume { name: name.to_owned(), source };
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    /// Every network carrying `label` (`key` or `key=value`).
    pub async fn networks_labelled(&self, label: &str) -> Result<Vec<Network>, DockerError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        self.inner
            .list_networks(Some(options))
            .await
            .map_err(|source| DockerError::ListNetworks { label: label.to_owned(), source })
    }

    /// Creates a private bridge network with the run's labels. Containers
    /// on it reach each other by their aliases; nothing else joins it.
    pub async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        self.record(Entry::Network(name.to_owned()))?;
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        self.inner
            .create_network(request)
            .await
            .map_err(|source| DockerError::CreateNetwork { name: name.to_owned(), source })?;
        Ok(())
    }

    /// Attaches container `id` to `network`, reachable there as `alias`.
    pub async fn connect_network(&self, network: &str, id: &str, alias: &str) -> Result<(), DockerError> {
        let request = NetworkConnectRequest {
            container: id.to_owned(),
            endpoint_config: Some(EndpointSettings { aliases: Some(vec![alias.to_owned()]), ..Default::default() }),
        };
        self.inner.connect_network(network, request).await.map_err(|source| DockerError::ConnectNetwork {
            id: id.to_owned(),
            network: network.to_owned(),
            source,
        })
    }

    /// Detaches container `id` from `network`: its connections over it
    /// break and its peers there no longer resolve or reach it.
    pub async fn disconnect_network(&self, network: &str, id: &str) -> Result<(), DockerError> {
        let request = NetworkDisconnectRequest { container: id.to_owned(), force: Some(true) };
        self.inner.disconnect_network(network, request).await.map_err(|source| DockerError::DisconnectNetwork {
            id: id.to_owned(),
            network: network.to_owned(),
            source,
        })
    }

    /// Removes a network, saying whether it was there.
    pub async fn remove_network_if_present(&self, name: &str) -> Result<bool, DockerError> {
        match self.inner.remove_network(name).await {
            Ok(()) => Ok(true),
            Err(source) => {
                let err = DockerError::RemoveNetwork { name: name.to_owned(), source };
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    pub async fn volumes_labelled(&self, label: &str) -> Result<Vec<Volume>, DockerError> {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
        let response = self
            .inner
            .list_volumes(Some(options))
            .await
            .map_err(|source| DockerError::ListVolumes { label: label.to_owned(), source })?;
        Ok(response.volumes.unwrap_or_default())
    }
}

/// A file as a stream of 1 MiB chunks, for a request body.
fn file_chunks(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        let n = file.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(buf), file)))
    })
}
