//! Deploying a workload: a container on a cell's storage
//! ([`deployment`]), the one wait for its server to answer
//! ([`readiness`]), finding `crashlab-agent` for the engines it hosts
//! ([`agent`]), and deployments spanning several hosts on a private
//! network ([`hosts`]). Above storage and the Docker door; below backups,
//! exploration, faults and the cycle.

pub mod agent;
pub mod deployment;
pub mod hosts;
pub mod readiness;
