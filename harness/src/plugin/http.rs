//! The volume driver's HTTP side: the server Docker calls on the unix
//! socket, and the client `crashlab volume` calls it with. Every call is
//! a `POST` of a JSON body answered with JSON, as Docker's plugin protocol
//! has it. A volume's mount holder ([`super::holder`]) answers the driver
//! the same way on a socket of its own.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};

/// The media type Docker's plugins answer with.
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

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

/// What answers the calls on a socket: the driver, or a mount holder.
pub trait Handler: Send + Sync + 'static {
    /// Answers one call: its path and JSON body; the answer's `Err` is
    /// empty on success.
    fn handle<'a>(&'a self, path: &'a str, body: &'a [u8]) -> BoxFuture<'a, Value>;
}

/// Serves `handler` on a unix socket at `socket` until `stop` resolves,
/// then removes the socket. A socket file left by a server that died is
/// replaced; one that still answers is not.
pub async fn serve<H: Handler>(
    handler: Arc<H>,
    socket: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), PluginError> {
    let listen = |source| PluginError::Listen { path: socket.to_owned(), source };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(listen)?;
    }
    if UnixStream::connect(socket).await.is_ok() {
        let source = std::io::Error::new(std::io::ErrorKind::AddrInUse, "another server answers there");
        return Err(listen(source));
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(listen)?;
    tracing::info!("listening on {}", socket.display());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| answer(handler.clone(), request));
                        let served = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            tracing::debug!("a connection ended: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("accept on {}: {e}", socket.display()),
            },
        }
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

async fn answer<H: Handler>(
    handler: Arc<H>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await?.to_bytes();
    tracing::debug!("{path} {}", String::from_utf8_lossy(&body));
    let value = handler.handle(&path, &body).await;
    let response = Response::builder()
        .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("a static header and a body make a response");
    Ok(response)
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
