//! Deploying a workload: a container on a cell's storage
//! ([`deployment`]), the one wait for its server to answer
//! ([`readiness`]), finding `crashlab-agent` for the engines it hosts
//! ([`agent`]), and deployments spanning several hosts on a private
//! network ([`hosts`]), and
//! what a host's loss does on each shape of deployment ([`topology`]). Above storage and the Docker door; below backups,
//! exploration, faults and the cycle.

pub mod agent;
pub mod deployment;
pub mod hosts;
pub mod readiness;
pub mod topology;
