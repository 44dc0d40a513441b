//! A client of Docker volume plugins' protocol (JSON over HTTP on a unix
//! socket), for the volumes of crashlab's own driver (`crashlab
//! volume-driver`, [`crate::plugin`]): `crashlab volume cut|fail|status`
//! call it, and so does a `host-kill` on a strategy whose volumes are
//! that driver's, to cut their power where the driver serves them. It sits
//! with storage so that the faults, below the driver's layer, can reach
//! it.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

/// crashlab's own driver's name, as `docker volume create -d` takes it.
pub const CRASHLAB_DRIVER: &str = "crashlab";

/// Where Docker looks for legacy plugins' sockets: a driver `NAME` answers
/// on `NAME.sock` there.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";

/// The media type Docker's plugins answer with.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The socket a legacy plugin named `driver` answers on.
pub fn socket_of(driver: &str) -> PathBuf {
    Path::new(PLUGIN_DIR).join(format!("{driver}.sock"))
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reach the volume driver at {path} (is `crashlab volume-driver` running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("call {call} on the volume driver")]
    Call {
        call: String,
        #[source]
        source: hyper::Error,
    },
    #[error("read the answer to {call}: {detail}")]
    Answer { call: String, detail: String },
}

/// What crashlab's driver answers about a volume (`/Crashlab.Status`,
/// `/Crashlab.Cut`, `/Crashlab.Fail`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStatus {
    pub mounted: bool,
    /// Bytes and namespace operations not yet durable.
    pub unsynced: u64,
    pub power_cut: bool,
    /// What the last cut dropped: bytes, files, namespace operations.
    pub dropped_bytes: u64,
    pub dropped_files: u64,
    pub dropped_ops: u64,
    /// Operations the rules failed on the current mount.
    pub injected_errors: u64,
    /// Writes a cut tore (a `torn` rule), and the size of the unsynced
    /// write an aimed cut landed on.
    #[serde(default)]
    pub torn_writes: u64,
    #[serde(default)]
    pub aimed_write_bytes: Option<u64>,
    /// The rules installed on the current mount, as written.
    pub rules: Vec<String>,
}

/// Calls `call` (e.g. `/Crashlab.Cut`) with `body` on the driver at
/// `socket` and returns its JSON answer; an answer whose `Err` is not
/// empty is an error with that text.
pub async fn call(socket: &Path, call: &str, body: serde_json::Value) -> Result<serde_json::Value, PluginError> {
    let stream =
        UnixStream::connect(socket).await.map_err(|source| PluginError::Connect { path: socket.to_owned(), source })?;
    let failed = |source| PluginError::Call { call: call.to_owned(), source };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(failed)?;
    tokio::spawn(connection);
    let request = Request::post(call)
        .header(hyper::header::HOST, "crashlab")
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static path and headers make a request");
    let response = sender.send_request(request).await.map_err(failed)?;
    let bytes = response.into_body().collect().await.map_err(failed)?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| PluginError::Answer { call: call.to_owned(), detail: e.to_string() })?;
    match value.get("Err").and_then(|e| e.as_str()) {
        Some(err) if !err.is_empty() => Err(PluginError::Answer { call: call.to_owned(), detail: err.to_owned() }),
        _ => Ok(value),
    }
}
