//! Deploying a workload: a container on a cell's storage
//! ([`deployment`]), the one wait for its server to answer
//! ([`readiness`]), the user's own check on the recovered data of a
//! service crashlab has no driver for ([`check`]), finding `crashlab-agent` for the engines it hosts
//! ([`agent`]), and deployments spanning several hosts on a private
//! network ([`hosts`]), and
//! what a host's loss does on each shape of deployment ([`topology`]). Above storage and the Docker door; below backups,
//! exploration, faults and the cycle.

pub mod agent;
pub mod check;
pub mod deployment;
pub mod hosts;
pub mod readiness;
pub mod topology;
