//! `kind = "app"`: a service crashlab has no driver for, run as it is.
//!
//! Nothing is sent to it: the service's own program is the load, running
//! for the scenario's `load` before the fault hits it, and no
//! acknowledgement is recorded, so the ack-log oracle does not apply
//! ([`Workload::records_acks`] is `false`). The verdict is the user's own
//! check (the scenario's `[workload] check`), which the harness runs on the
//! recovered data in a container of its own; this driver never reads the
//! data back. The service counts as ready once its container started (and
//! printed `ready-log`, when the scenario names one): the driver knows no
//! protocol to ask it.
//!
//! The kind has no image of its own: a scenario names the user's.

use crate::{ContainerSpec, Kind, LoadConfig, LoadOutcome, Observation, Workload, WorkloadError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the data is unless the scenario says (`data-dir`).
pub const DATA_DIR: &str = "/data";

/// The container port published for the service. Nothing is sent to it;
/// a scenario's `port` replaces it.
pub const PORT: u16 = 8080;

/// `kind = "app"`.
pub const KIND: Kind = Kind { name: "app", build: |image, server_args| Box::new(App { image, server_args }) };

/// The user's service, on the user's image.
#[derive(Debug, Clone)]
pub struct App {
    /// `None` only as [`Kind::workload`] builds it, to ask what the kind
    /// can do: a scenario of this kind names its image.
    pub image: Option<String>,
    /// Arguments after the image's command (or the scenario's `command`).
    pub server_args: Vec<String>,
}

impl Workload for App {
    fn name(&self) -> &str {
        KIND.name
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec::plain(self.image.as_deref().unwrap_or_default(), &self.server_args, DATA_DIR, PORT)
    }

    fn probe(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async { Ok(()) })
    }

    fn setup(&self, _addr: SocketAddr, _load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async { Ok(()) })
    }

    /// Waits for the end of the load: the service writes on its own.
    fn load(
        &self,
        _addr: SocketAddr,
        _load: LoadConfig,
        mut stop: tokio::sync::watch::Receiver<bool>,
        _grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>> {
        Box::pin(async move {
            let epoch = std::time::Instant::now();
            // A dropped sender ends the load as a stop does.
            let _ = stop.wait_for(|stopped| *stopped).await;
            Ok(LoadOutcome {
                log: crate::AckLog::default(),
                latency_us: crate::latency_histogram(),
                client_errors: Vec::new(),
                epoch,
            })
        })
    }

    /// Never a pass by accident: this driver cannot read the data, and the
    /// harness judges it by the user's check instead.
    fn observe(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(async {
            Ok(Observation::Unreadable {
                detail: "crashlab has no driver for this service: only its `check` can read the data".into(),
            })
        })
    }

    fn records_acks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_load_records_nothing_and_ends_when_told() {
        let app = (KIND.build)(Some("registry.example/shop:1".into()), vec!["--flag".into()]);
        assert!(!app.records_acks());
        let spec = app.container();
        assert_eq!((spec.image.as_str(), spec.data_dir.as_str()), ("registry.example/shop:1", DATA_DIR));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let load = LoadConfig { clients: 1, accounts: 1, seed: 1, reconnect: false, ids_from: 0, replicas: 1 };
        let running = app.load(addr, load, rx, Duration::ZERO);
        tx.send(true).unwrap();
        let outcome = running.await.unwrap();
        assert_eq!(outcome.log.acked(), 0);
        assert!(matches!(app.observe(addr).await.unwrap(), Observation::Unreadable { .. }));
    }
}
