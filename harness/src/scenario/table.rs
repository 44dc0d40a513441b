//! The `[[strategy]]` table, one parser for `crashlab run`'s scenarios
//! and `crashlab bench`'s definitions:
//!
//! ```toml
//! [[strategy]]
//! name = "ram-volume"
//! driver = "local"
//! driver-opts = { type = "tmpfs", device = "tmpfs" }
//! ```
//!
//! A table with `driver` is a volume of that driver with its options, the
//! same value as `volume:local,type=tmpfs,device=tmpfs` in a list of
//! strategies, named `name`. The bench also takes `host-path` (a directory
//! under a host path) and a table naming a built-in strategy alone.

use crate::storage::Strategy;
use crate::storage::driver::DriverVolume;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a table's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// One of the harness's strategies.
    Builtin(Strategy),
    /// A named volume from any Docker volume driver, with its options.
    Volume(&'static DriverVolume),
    /// A directory under a host path, bind-mounted (the bench only).
    HostPath(PathBuf),
}

/// A `[[strategy]]` table as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StrategyTable {
    pub name: toml::Spanned<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    host_path: Option<String>,
}

impl StrategyTable {
    /// The table's name and backend, or what is wrong with it.
    pub fn check(&self) -> Result<(String, Backend), String> {
        let name = self.name.get_ref().clone();
        let backend = match (&self.driver, &self.driver_opts, &self.host_path) {
            (Some(_), _, Some(_)) => return Err("give either `driver` or `host-path`, not both".into()),
            (None, Some(_), _) => return Err("`driver-opts` needs a `driver`".into()),
            (Some(driver), options, None) => {
                let options = options.clone().unwrap_or_default().into_iter().collect();
                Backend::Volume(DriverVolume::new(&name, driver, options)?.intern())
            }
            (None, None, Some(path)) => host_path(path)?,
            (None, None, None) => {
                builtin(&name).map_err(|e| format!("{e}; or give `driver` or `host-path` to define a backend"))?
            }
        };
        check_name(&name)?;
        Ok((name, backend))
    }

    /// The driver volume a scenario's table defines; a scenario takes
    /// built-in strategies by name and host directories as `bind-mount`.
    pub fn check_volume(&self) -> Result<&'static DriverVolume, String> {
        match self.check()? {
            (_, Backend::Volume(volume)) => Ok(volume),
            (name, Backend::Builtin(_)) => Err(format!(
                "`{name}` is a built-in strategy: list it in `[matrix] strategies`; a table defines a volume \
                 with `driver` (and `driver-opts`)"
            )),
            (_, Backend::HostPath(_)) => {
                Err("`host-path` is a bench backend; a scenario keeps host directories with `bind-mount`".into())
            }
        }
    }
}

pub fn builtin(name: &str) -> Result<Backend, String> {
    Strategy::ALL.into_iter().find(|s| s.as_str() == name).map(Backend::Builtin).ok_or_else(|| {
        format!("`{name}` is not a built-in strategy (known: {})", Strategy::ALL.map(Strategy::as_str).join(", "))
    })
}

pub fn host_path(path: &str) -> Result<Backend, String> {
    crate::settings::host_dir("host-path", path).map(Backend::HostPath)
}

/// Names go into reports, Docker object names and file names.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok { Ok(()) } else { Err(format!("strategy name `{name}` must be 1-40 of [A-Za-z0-9._-]")) }
}
