//! The workload a scenario names: its `[workload]` section made into a
//! driver. The kind ([`WorkloadKind`], one of the workloads crate's
//! [`crashlab_workloads::KINDS`]) builds its driver on the section's image
//! with its server arguments; whatever else the section changes about the
//! container (environment, command, data directory, port, readiness line,
//! user, binds) wraps it in a [`Custom`]. What the workload can do it says
//! itself, through [`Workload`]'s methods, so that nothing here or in its
//! callers (`run`, `replay`, `bench`, `compose`) matches on the kind.
//!
//! This sits below the commands and the runner: it uses the scenario model
//! and the workloads crate only.

use crate::settings::{WorkloadKind, WorkloadSection};
use crashlab_workloads::custom::Custom;
use crashlab_workloads::{ContainerSpec, Workload};

/// The workload a scenario's `[workload]` section describes.
pub fn workload_for(section: &WorkloadSection) -> Box<dyn Workload> {
    let overrides = section.overrides();
    let driver = (section.kind.def().build)(section.image.clone(), section.server_args.clone());
    if overrides.is_empty() { driver } else { Box::new(Custom { inner: driver, overrides }) }
}

/// A kind's driver on `image`, as no scenario changes it otherwise: what
/// to ask the facts that depend on the image (its credentials) of.
pub fn driver_on(kind: WorkloadKind, image: &str) -> Box<dyn Workload> {
    (kind.def().build)(Some(image.to_owned()), Vec::new())
}

/// The container a kind's driver asks for on crashlab's own image, before
/// any scenario changes it: its data directory, port and environment.
pub fn default_container(kind: WorkloadKind) -> ContainerSpec {
    kind.def().workload().container()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn the_plan_knows_which_workloads_have_replicas_and_leaves_the_others_na() {
        for kind in WorkloadKind::all() {
            // A kind with no driver runs the user's image and check.
            let own =
                if kind.def().workload().records_acks() { "" } else { "image = \"shop:1\"\ncheck = [\"true\"]\n" };
            let text = format!(
                "name = \"r\"\n[workload]\nkind = \"{}\"\n{own}[matrix]\n\
                 strategies = [\"replica-async\", \"named-volume\"]\nfaults = [\"host-loss\"]\n",
                kind.as_str()
            );
            let scenario = Scenario::parse(&text, "test").unwrap();
            let has = workload_for(&scenario.workload).replication().is_some();
            assert_eq!(has, ["mariadb", "postgres"].contains(&kind.as_str()), "{kind:?}");
            let (run, na) = scenario.plan();
            let replica_runs = run.iter().any(|c| c.strategy == crate::storage::Strategy::ReplicaAsync);
            assert_eq!(replica_runs, has, "{kind:?}");
            assert_eq!(na.iter().any(|u| u.reason.contains("replicas of MariaDB and PostgreSQL")), !has, "{kind:?}");
        }
    }

    #[test]
    fn a_section_that_changes_the_container_wraps_the_driver_and_keeps_its_facts() {
        let kind = WorkloadKind::named("postgres").unwrap();
        let text = "name = \"c\"\n[workload]\nkind = \"postgres\"\nimage = \"postgres:16\"\n\
                    server-args = [\"-c\", \"fsync=off\"]\nport = 5433\n\
                    [matrix]\nstrategies = [\"named-volume\"]\nfaults = [\"restart\"]\n";
        let scenario = Scenario::parse(text, "test").unwrap();
        let w = workload_for(&scenario.workload);
        let spec = w.container();
        assert_eq!((spec.image.as_str(), spec.port), ("postgres:16", 5433));
        assert_eq!(spec.cmd, ["-c", "fsync=off"]);
        assert_eq!(w.name(), "postgres");
        assert_eq!(w.client_command(), driver_on(kind, "postgres:16").client_command());
        assert_eq!(w.credentials(), driver_on(kind, "postgres:16").credentials());
        assert_eq!(default_container(kind).port, 5432);
    }
}
