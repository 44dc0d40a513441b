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
use std::path::Path;
use std::sync::Arc;
use tokio::net::{UnixListener, UnixStream};

pub use crate::storage::plugin_client::{CONTENT_TYPE, PluginError, call};

/// What answers the calls on a socket: the driver, or a mount holder.
pub trait Handler: Send + Sync + 'static {
    /// Answers one call: its path and JSON body; the answer's `Err` is
    /// empty on success.
    fn handle<'a>(&'a self, path: &'a str, body: &'a [u8]) -> BoxFuture<'a, Value>;
}

/// Serves `handler` on a unix socket at `socket` until `stop` resolves,
/// then waits up to `drain` for the connections still open (the call that
/// stopped a holder is answered so) and removes the socket. A socket file
/// left by a server that died is replaced; one that still answers is not.
/// The driver drains nothing: Docker keeps its connections open between
/// calls.
pub async fn serve<H: Handler>(
    handler: Arc<H>,
    socket: &Path,
    stop: impl std::future::Future<Output = ()>,
    drain: std::time::Duration,
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
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = handler.clone();
                    connections.spawn(async move {
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
            // Reaps the connections that ended.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // The calls under way are answered (a holder's `/Holder.Unmount` is
    // what stopped it), for a while.
    let drained = tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() && !drain.is_zero() {
        tracing::warn!("{} connection(s) still open after {drain:?}; closed", connections.len());
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
