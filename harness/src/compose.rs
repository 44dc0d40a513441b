//! `crashlab run --compose FILE --service S`: one service of a Compose file
//! tested as the file deploys it.
//!
//! The file is read with the `compose_spec` crate (never by running
//! `docker compose`) and the service is translated into the scenario model
//! that bring-your-own images already use: the workload kind (from the
//! service's `x-crashlab: { kind: ... }`, or guessed from the image name),
//! the image, its environment (and `env_file`), command, user, the port the
//! server listens on in the container, the host files it binds in (mounted
//! read-only, so that a run never changes them), and where its data lives.
//! The mount over the data directory decides the strategy the file implies,
//! "your configuration": a named volume is `named-volume`, a bind mount
//! `bind-mount` (on a directory crashlab owns, never the file's), a tmpfs
//! `tmpfs`, an anonymous volume `anonymous-volume`, and no mount at all
//! `container-layer`, or `anonymous-volume` when the image declares the
//! data directory a `VOLUME` (Docker then puts one there regardless). The
//! smoke scenario's strategies run beside it under the same faults and
//! expectations (the durability table), so the report shows what the other
//! choices would have kept.
//!
//! The driver's credentials replace the file's (the drivers log in as
//! `root`/`crashlab` and `postgres`/`crashlab`); host ports are not
//! published as written (each cell publishes the server on a loopback port
//! of its own); keys crashlab does not carry over (healthcheck, restart,
//! resource limits, …) are named in the translation's notes rather than
//! silently dropped. What cannot be translated (a service without an
//! image, an image no driver is known for and no `check`) is an error
//! naming the service, the key and, where the file says it, the line.
//!
//! A service crashlab has no driver for is tested with the user's own
//! check (`x-crashlab: { check: [...] }`, kind `app`): its own program is
//! the load, and the check, run on the recovered data, the verdict.
//!
//! Before the file is read as Compose, its values are interpolated as
//! Compose does ([`interpolate`]): `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR:?error}`, `${VAR:+alternative}` and their forms without `:`, `$$`
//! for a `$`. Values come from the environment crashlab runs in, then the
//! `.env` file in the Compose file's directory (the project directory),
//! as `docker compose` takes them ([`Variables`]). Keys and comments are
//! not interpolated; a variable substituted as a blank is named in the
//! notes, and a required one that is missing, or an expression that does
//! not parse, is an error naming the file, the line and the variable.

pub mod interpolate;

use crate::scenario::{Scenario, WorkloadKind};
use crate::storage::Strategy;
use crate::storage::plugin_client::CRASHLAB_DRIVER;
use crate::text::one_line;
use compose_spec::service::volumes::{self, Mount};
use compose_spec::service::{Command, ports};
use compose_spec::{Compose, ListOrMap, Resource, Service, ShortOrLong, YamlValue};
use interpolate::Lookup;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The strategies shown beside the user's: the smoke scenario's, every
/// place Docker can keep a container's data.
const ALTERNATIVES: [Strategy; 5] =
    [Strategy::ContainerLayer, Strategy::AnonymousVolume, Strategy::NamedVolume, Strategy::BindMount, Strategy::Tmpfs];

/// The smoke scenario's faults and cycles, unless `x-crashlab` says others.
const DEFAULT_FAULTS: [&str; 3] = ["process-kill", "restart", "recreate"];
const DEFAULT_CYCLES: i64 = 2;

/// The keys `x-crashlab` takes: the `[workload]` keys a Compose service
/// does not say itself, and the faults and cycles to run.
const WORKLOAD_KEYS: [&str; 9] =
    ["data-dir", "port", "ready-log", "clients", "accounts", "load", "ready-timeout", "check", "check-timeout"];
/// The user's own check, which makes a service crashlab has no driver for
/// testable (kind `app`).
const CHECK_KEY: &str = "check";
const MATRIX_KEYS: [&str; 2] = ["faults", "cycles"];
/// And the strategies shown beside the user's (`[]` for none).
const ALTERNATIVES_KEY: &str = "alternatives";
/// The keys whose values are whole numbers: a string there (what a
/// variable gives, `cycles: ${N:-1}`) is read as one, as Compose casts an
/// interpolated value to its field's type.
const NUMBER_KEYS: [&str; 4] = ["port", "clients", "accounts", "cycles"];

/// A Compose file or service that cannot be tested.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read compose file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `.env` file, or the one `--env-file` named.
    #[error("cannot read the variables file {}: {source}", path.display())]
    ReadVariables {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is `file:line:column`, or the file alone where the
    /// Compose reader does not say where.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// Where the service's data directory is, as the file deploys it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A named volume (`db-data:/var/lib/mysql`) of Docker's local driver
    /// with no options.
    Named(String),
    /// A named volume the file gives a driver other than `local`, or
    /// `driver_opts`: the driver's volume, as the file declares it.
    Driver { volume: String, driver: String, options: Vec<(String, String)> },
    /// A host directory (`./data:/var/lib/mysql`).
    Bind(PathBuf),
    /// A tmpfs mount (`tmpfs:` or `type: tmpfs`).
    Tmpfs,
    /// An anonymous volume declared in the file (`- /var/lib/mysql`).
    Anonymous,
    /// No mount: the writable layer, unless the image declares a volume
    /// there.
    Unmounted,
}

/// A mount of the service, by what it mounts.
enum Mounted {
    /// A named (`Some`) or anonymous volume.
    Volume(Option<String>),
    /// A host path, resolved against the file's directory.
    Bind(PathBuf),
    Tmpfs,
    /// A named pipe or a cluster volume.
    Other(&'static str),
}

/// One service, read and checked, before the image is looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    /// The file as named on the command line, for messages and the report.
    pub origin: String,
    pub service: String,
    pub kind: WorkloadKind,
    pub image: String,
    /// Where the server keeps its data in the container: the driver's, or
    /// `x-crashlab`'s `data-dir`, or the mount above it that holds it.
    pub data_dir: String,
    pub placement: Placement,
    /// The `[workload]` table of the equivalent scenario, without
    /// `kind`, `image` and `data-dir` (which depend on the image).
    workload: toml::Table,
    /// `faults` and `cycles`.
    matrix: toml::Table,
    /// Whether `x-crashlab` or the mount moved the data directory.
    data_dir_set: bool,
    /// The strategies beside the user's, when `x-crashlab` chose them.
    alternatives: Option<Vec<Strategy>>,
    /// `file:line:column` of `x-crashlab`, for errors in its values.
    x_location: String,
    /// What the file says that the test does not carry over, one sentence
    /// each.
    pub notes: Vec<String>,
}

/// A service translated into a scenario.
#[derive(Debug, Clone)]
pub struct Translation {
    pub scenario: Scenario,
    /// The scenario as TOML: what `crashlab run FILE` runs the same way.
    pub toml: String,
    /// The strategy the file implies.
    pub yours: Strategy,
    pub notes: Vec<String>,
}

/// Where the file's variables take their values, as `docker compose`
/// does: the environment crashlab runs in first, then the `.env` file in
/// the project directory (the Compose file's), or the file `--env-file`
/// names instead.
pub struct Variables<'a> {
    env: Lookup<'a>,
    dotenv: Vec<(String, String)>,
}

impl<'a> Variables<'a> {
    /// `env`, then `dir/.env` when there is one (its values interpolated
    /// from `env` and the lines above them).
    pub fn read(dir: &Path, env: Lookup<'a>) -> Result<Self, ComposeError> {
        Self::read_file(&dir.join(".env"), false, env)
    }

    /// `env`, then the variables file `path`, which must exist when
    /// `required` (a file the user named, as `docker compose --env-file`
    /// requires it); the project's `.env` is not read then.
    pub fn read_file(path: &Path, required: bool, env: Lookup<'a>) -> Result<Self, ComposeError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => return Err(ComposeError::ReadVariables { path: path.to_owned(), source }),
        };
        let dotenv = interpolate::parse_dotenv(&text, env).map_err(|e| ComposeError::Invalid {
            location: format!("{}:{}", path.display(), e.line),
            message: e.message,
        })?;
        Ok(Self { env, dotenv })
    }

    /// The value of `name`, `None` when neither source sets it.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.env)(name).or_else(|| self.dotenv.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }
}

/// Reads `path` and plans `service` (the only one when `None`), its
/// variables from crashlab's environment and the file's `.env`, or
/// `env_file` instead of `.env` (`--env-file`).
pub fn load(path: &Path, service: Option<&str>, env_file: Option<&Path>) -> Result<ServicePlan, ComposeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ComposeError::Read { path: path.to_owned(), source })?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let env = |name: &str| std::env::var(name).ok();
    let vars = match env_file {
        Some(file) => Variables::read_file(file, true, &env)?,
        None => Variables::read(&dir, &env)?,
    };
    parse(&text, &path.display().to_string(), &dir, service, &|name| vars.get(name))
}

/// Plans `service` of the Compose text; `origin` names the file in errors,
/// `dir` is where relative paths (binds, `env_file`) start, and `vars`
/// gives the values of the file's variables.
pub fn parse(
    text: &str,
    origin: &str,
    dir: &Path,
    service: Option<&str>,
    vars: Lookup,
) -> Result<ServicePlan, ComposeError> {
    let invalid = |e: serde_yaml::Error| {
        let message = reworded(&e.to_string());
        // The reader loses the position inside a service's mapping (its
        // keys are collected before they are checked): then the first line
        // naming the value the message quotes is the best guess.
        let (line, column) = match e.location() {
            Some(l) => (l.line(), l.column()),
            None => quoted_line(text, &message).unwrap_or((0, 0)),
        };
        let location = if line == 0 { origin.to_owned() } else { format!("{origin}:{line}:{column}") };
        ComposeError::Invalid { location, message }
    };
    let mut yaml: YamlValue = serde_yaml::from_str(text).map_err(invalid)?;
    let unset = interpolate::interpolate_yaml(&mut yaml, vars).map_err(|e| {
        let location = match expression_line(text, &e.expression) {
            Some((line, column)) => format!("{origin}:{line}:{column}"),
            None => origin.to_owned(),
        };
        ComposeError::Invalid { location, message: e.message }
    })?;
    // As `from_yaml_str` does with `apply_merge`, on the interpolated
    // values: the reader's errors carry no position either way.
    let compose: Compose = Compose::options().apply_merge(true).from_yaml_value(yaml).map_err(|e| {
        // A blank where a value was needed is the likeliest cause.
        let mut e = invalid(e);
        if let ComposeError::Invalid { message, .. } = &mut e
            && let Some(names) = blank_names(&unset)
        {
            let _ = write!(message, " (not set, so taken as blank strings: {names})");
        }
        e
    })?;
    let names: Vec<String> = compose.services.keys().map(|k| k.to_string()).collect();
    let name = match service {
        Some(name) => name.to_owned(),
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ComposeError::Invalid {
                location: origin.to_owned(),
                message: format!(
                    "the file has {} services ({}); name one with --service",
                    names.len(),
                    backticked(&names)
                ),
            });
        }
    };
    let Some((_, svc)) = compose.services.iter().find(|(k, _)| k.as_str() == name) else {
        return Err(ComposeError::Invalid {
            location: origin.to_owned(),
            message: format!(
                "no service `{}` in the file; it has {}",
                one_line(&name),
                if names.is_empty() { "none".to_owned() } else { backticked(&names) }
            ),
        });
    };
    // Compose warns of every blank; the notes name those of this service
    // and of the file's top-level keys (volumes, …), once each.
    let mut named: Vec<&str> = Vec::new();
    let mut blanks: Vec<String> = Vec::new();
    for u in &unset {
        let in_service = u.path.first().map(String::as_str) == Some("services");
        let ours = u.path.get(1) == Some(&name);
        if (in_service && !ours) || named.contains(&u.variable.as_str()) {
            continue;
        }
        named.push(&u.variable);
        let key = u.path[if ours { 2 } else { 0 }..].join(".");
        blanks.push(format!("the variable `{}` is not set: `{key}` took a blank string for it", u.variable));
    }
    Planner { text, origin, dir, name: &name, compose: &compose, svc, vars, blanks }.plan()
}

/// The variables substituted as blanks, once each, or `None`.
fn blank_names(unset: &[interpolate::Unset]) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    for u in unset {
        if !names.contains(&u.variable) {
            names.push(u.variable.clone());
        }
    }
    (!names.is_empty()).then(|| backticked(&names))
}

/// The line and column of `expression` in the file's text, outside
/// comment lines: where an interpolation error is.
fn expression_line(text: &str, expression: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with('#'))
        .find_map(|(i, line)| line.find(expression).map(|c| (i + 1, c + 1)))
}

/// The reader's message, said as a user would understand it.
fn reworded(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("extension key `")
        && let Some((key, _)) = rest.split_once('`')
        && message.ends_with("does not start with \"x-\"")
    {
        return format!("unknown key `{key}` (extension keys start with `x-`)");
    }
    message.to_owned()
}

/// The line and column of the first line holding the first `quoted`
/// value of `message`, as a key (`name:`) or else anywhere.
fn quoted_line(text: &str, message: &str) -> Option<(usize, usize)> {
    let quoted = message.split('`').nth(1).filter(|q| !q.is_empty())?;
    let at = |pred: &dyn Fn(&str) -> Option<usize>| {
        text.lines().enumerate().find_map(|(i, line)| pred(line).map(|c| (i + 1, c + 1)))
    };
    at(&|line| {
        let trimmed = line.trim_start();
        trimmed.strip_prefix(quoted).filter(|r| r.trim_start().starts_with(':')).map(|_| line.len() - trimmed.len())
    })
    .or_else(|| at(&|line| line.find(quoted)))
}

/// `path` from the file's directory, without `.` parts.
fn resolve(dir: &Path, path: &Path) -> PathBuf {
    dir.join(path).components().filter(|c| *c != std::path::Component::CurDir).collect()
}

fn backticked(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// What planning one service needs at hand.
struct Planner<'a> {
    text: &'a str,
    origin: &'a str,
    dir: &'a Path,
    name: &'a str,
    compose: &'a Compose,
    svc: &'a Service,
    /// The values of variables, for `KEY` alone in `environment` and
    /// `env_file`.
    vars: Lookup<'a>,
    /// The notes on variables substituted as blanks.
    blanks: Vec<String>,
}

impl Planner<'_> {
    /// An error about the service, at the line of `key` in it (or of the
    /// service itself).
    fn error(&self, key: Option<&str>, message: impl std::fmt::Display) -> ComposeError {
        let (line, column) = service_key_line(self.text, self.name, key);
        ComposeError::Invalid {
            location: format!("{}:{line}:{column}", self.origin),
            message: format!("service `{}`: {message}", self.name),
        }
    }

    /// An error about an `x-crashlab` key, at the key's own line when it
    /// has one (a block mapping), else at `x-crashlab`'s.
    fn x_error(&self, key: &str, message: impl std::fmt::Display) -> ComposeError {
        let own_line =
            service_key_line(self.text, self.name, Some(key)) != service_key_line(self.text, self.name, None);
        self.error(Some(if own_line { key } else { "x-crashlab" }), message)
    }

    fn plan(&self) -> Result<ServicePlan, ComposeError> {
        let svc = self.svc;
        let mut notes = self.blanks.clone();
        let image = match (&svc.image, &svc.build) {
            (Some(image), build) => {
                if build.is_some() {
                    notes.push(format!("`build` is not run: the image `{image}` must already be in the daemon"));
                }
                image.to_string()
            }
            (None, _) => {
                return Err(self.error(
                    Some("build"),
                    "has no `image` (crashlab does not run `build`); build it, then name its tag in `image`",
                ));
            }
        };
        let mut x = self.extension()?;
        let (kind, own) = self.resolve_kind(&mut x, &image)?;
        let defaults = crate::workload::default_container(kind);

        let (mut workload, matrix, alternatives) = self.sort_extension(x)?;

        let env = self.environment(kind, &image, &mut notes)?;
        if !env.is_empty() {
            workload.insert("env".into(), strings(env));
        }
        if let Some(command) = &svc.command {
            let command = self.command("command", command)?;
            if !command.is_empty() {
                workload.insert("command".into(), strings(command));
            }
        }
        if let Some(entrypoint) = &svc.entrypoint {
            let entrypoint = self.command("entrypoint", entrypoint)?;
            workload.insert("entrypoint".into(), strings(entrypoint));
        }
        if let Some(user) = &svc.user {
            workload.insert("user".into(), user.to_string().into());
        }
        // A service with no driver is sent nothing: its ports do not matter.
        if !own
            && !workload.contains_key("port")
            && let Some(port) = self.port(defaults.port, &mut notes)?
        {
            workload.insert("port".into(), i64::from(port).into());
        }

        let mut x_data_dir = workload.get("data-dir").and_then(|v| v.as_str()).map(str::to_owned);
        if own && x_data_dir.is_none() {
            x_data_dir = Some(self.only_mount()?);
        }
        let data_dir = x_data_dir.clone().unwrap_or_else(|| defaults.data_dir.clone());
        let (placement, mount_target, binds) = self.mounts(&data_dir, &mut notes)?;
        let data_dir_set = x_data_dir.is_some() || mount_target.as_deref().is_some_and(|t| t != data_dir);
        let data_dir = mount_target.unwrap_or(data_dir);
        workload.remove("data-dir");
        if !binds.is_empty() {
            workload.insert("binds".into(), strings(binds));
        }
        self.unsupported_keys(&mut notes);
        Ok(ServicePlan {
            origin: self.origin.to_owned(),
            service: self.name.to_owned(),
            kind,
            image,
            data_dir,
            placement,
            workload,
            matrix,
            data_dir_set,
            alternatives,
            x_location: {
                let (line, column) = service_key_line(self.text, self.name, Some("x-crashlab"));
                format!("{}:{line}:{column}", self.origin)
            },
            notes,
        })
    }

    /// The workload: `x-crashlab`'s `kind`, else `app` when it gives a
    /// `check`, else the one the image's name implies; and whether it is a
    /// kind with no driver, which a `check` must then come with (and only
    /// then).
    fn resolve_kind(&self, x: &mut toml::Table, image: &str) -> Result<(WorkloadKind, bool), ComposeError> {
        let kind = match x.remove("kind") {
            Some(value) => self.kind_of(&value)?,
            // A check of the user's own: the service is run as it is, with
            // no driver (kind `app`).
            None if x.contains_key(CHECK_KEY) => {
                WorkloadKind::named(crashlab_workloads::app::KIND.name).expect("`app` is one of the kinds")
            }
            None => self.guess_kind(image)?,
        };
        // A kind with no driver sends nothing and reads nothing back: the
        // service's own program is the load, the user's check the oracle.
        let own = !kind.def().workload().records_acks();
        if x.contains_key(CHECK_KEY) && !own {
            return Err(self.x_error(
                CHECK_KEY,
                format!(
                    "x-crashlab: `check` is for a service crashlab has no driver for; `{kind}`'s driver checks the \
                     data against the writes it acknowledged (leave `check` out, or say `kind: app`)",
                    kind = kind.as_str()
                ),
            ));
        }
        if own && !x.contains_key(CHECK_KEY) {
            return Err(self.error(
                Some("x-crashlab"),
                "x-crashlab: kind `app` has no driver to read the data back: give the command that checks it in \
                 `check` (run on the recovered data after each fault; exit 0 passes)",
            ));
        }
        Ok((kind, own))
    }

    /// `command` or `entrypoint` as a list: Compose's list, or its string
    /// split as Compose splits the plain cases.
    fn command(&self, key: &str, command: &Command) -> Result<Vec<String>, ComposeError> {
        match command {
            Command::List(list) => Ok(list.clone()),
            Command::String(s) => split_command(s)
                .map_err(|why| self.error(Some(key), why.replacen("`command: ", &format!("`{key}: "), 1))),
        }
    }

    /// Where a service with no driver keeps its data when `x-crashlab`
    /// does not say: the target of its only volume or tmpfs mount, or,
    /// without one, of its only bind mount.
    fn only_mount(&self) -> Result<String, ComposeError> {
        let mut volumes = Vec::new();
        let mut binds = Vec::new();
        for m in volumes::into_long_iter(self.svc.volumes.clone()) {
            match m {
                Mount::Volume(v) => volumes.push(v.common.target.as_path().display().to_string()),
                Mount::Tmpfs(t) => volumes.push(t.common.target.as_path().display().to_string()),
                Mount::Bind(b) => binds.push(b.common.target.as_path().display().to_string()),
                Mount::NamedPipe(_) | Mount::Cluster(_) => {}
            }
        }
        if let Some(tmpfs) = &self.svc.tmpfs {
            volumes.extend(tmpfs.clone().into_list().into_iter().map(|t| t.as_path().display().to_string()));
        }
        match (&volumes[..], &binds[..]) {
            ([only], _) | ([], [only]) => Ok(only.clone()),
            ([], []) => Err(self.error(
                Some("image"),
                "has no mount to hold its data; say where the service keeps it with `x-crashlab: { data-dir: /path }`",
            )),
            _ => Err(self.error(
                Some("volumes"),
                format!(
                    "cannot tell which of its {} mounts holds the data; say where the service keeps it with \
                     `x-crashlab: {{ data-dir: /path }}`",
                    volumes.len() + binds.len()
                ),
            )),
        }
    }

    /// `x-crashlab` as TOML values, keyed as in a scenario.
    fn extension(&self) -> Result<toml::Table, ComposeError> {
        let Some((_, value)) = self.svc.extensions.iter().find(|(k, _)| k.as_str() == "x-crashlab") else {
            return Ok(toml::Table::new());
        };
        let bad = |why: String| self.error(Some("x-crashlab"), format!("x-crashlab: {why}"));
        let YamlValue::Mapping(map) = value else {
            return Err(bad("expected a mapping like `{ kind: mariadb }`".into()));
        };
        let mut table = toml::Table::new();
        for (key, value) in map {
            let YamlValue::String(key) = key else {
                return Err(bad(format!("keys are strings, got {key:?}")));
            };
            if key == CHECK_KEY {
                table.insert(key.clone(), self.check(value)?);
                continue;
            }
            let mut value = yaml_to_toml(value).map_err(|why| bad(format!("`{key}`: {why}")))?;
            if let toml::Value::String(text) = &value
                && NUMBER_KEYS.contains(&key.as_str())
            {
                let number = text
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("`{key}` takes a whole number, got `{}`", one_line(text))))?;
                value = number.into();
            }
            table.insert(key.clone(), value);
        }
        Ok(table)
    }

    /// `x-crashlab`'s `check`, a command as Compose's `command` is: a list
    /// of strings, or a string split at blanks. Another type is an error
    /// at the key's line.
    fn check(&self, value: &YamlValue) -> Result<toml::Value, ComposeError> {
        let bad = |why: String| self.x_error(CHECK_KEY, format!("x-crashlab: `check` {why}"));
        let words = match value {
            YamlValue::String(s) => split_command(s).map_err(|why| bad(format!("is not a command: {why}")))?,
            YamlValue::Sequence(items) => items
                .iter()
                .map(|item| match item {
                    YamlValue::String(s) => Ok(s.clone()),
                    other => Err(bad(format!("takes a list of strings, got {} in it; quote it", yaml_kind(other)))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => {
                return Err(bad(format!(
                    "takes a command: a list of strings (`[\"sh\", \"-c\", \"...\"]`) or a string, got {}",
                    yaml_kind(other)
                )));
            }
        };
        if words.is_empty() {
            return Err(bad("is empty: give the command that checks the recovered data".into()));
        }
        Ok(strings(words))
    }

    /// `x-crashlab`'s keys but `kind`, sorted: the `[workload]` keys, the
    /// `[matrix]` keys, and the strategies beside the user's when it names
    /// them.
    fn sort_extension(
        &self,
        x: toml::Table,
    ) -> Result<(toml::Table, toml::Table, Option<Vec<Strategy>>), ComposeError> {
        let mut workload = toml::Table::new();
        let mut matrix = toml::Table::new();
        let mut alternatives = None;
        for (key, value) in x {
            if WORKLOAD_KEYS.contains(&key.as_str()) {
                workload.insert(key, value);
            } else if MATRIX_KEYS.contains(&key.as_str()) {
                matrix.insert(key, value);
            } else if key == ALTERNATIVES_KEY {
                let list = value.as_array().cloned().unwrap_or_else(|| vec![value.clone()]);
                let mut chosen = Vec::new();
                for item in list {
                    let strategy: Strategy = item.clone().try_into().map_err(|_| {
                        self.error(
                            Some("x-crashlab"),
                            format!(
                                "x-crashlab: alternatives: unknown strategy {item}, expected a list of {}",
                                ALTERNATIVES.map(|s| s.to_string()).join(", ")
                            ),
                        )
                    })?;
                    chosen.push(strategy);
                }
                alternatives = Some(chosen);
            } else {
                return Err(self.error(
                    Some("x-crashlab"),
                    format!(
                        "x-crashlab: unknown key `{}`, expected one of `kind`, {}",
                        one_line(&key),
                        WORKLOAD_KEYS
                            .iter()
                            .chain(&MATRIX_KEYS)
                            .chain(&[ALTERNATIVES_KEY])
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        Ok((workload, matrix, alternatives))
    }

    /// The workload the image's name implies ([`guess_kind`]), or an error
    /// that says how to name one.
    fn guess_kind(&self, image: &str) -> Result<WorkloadKind, ComposeError> {
        guess_kind(image).ok_or_else(|| {
            self.error(
                Some("image"),
                format!(
                    "cannot tell which workload drives image `{image}`; add `x-crashlab: {{ kind: ... }}` ({}), or, \
                     for a service crashlab has no driver for, `x-crashlab: {{ check: [...] }}` with a command that \
                     checks its data",
                    WorkloadKind::list()
                ),
            )
        })
    }

    fn kind_of(&self, value: &toml::Value) -> Result<WorkloadKind, ComposeError> {
        let name = value.as_str().unwrap_or_default();
        toml::Value::String(name.to_owned()).try_into::<WorkloadKind>().map_err(|_| {
            self.error(
                Some("x-crashlab"),
                format!(
                    "x-crashlab: unknown kind `{}`, expected {}",
                    one_line(value.to_string().trim_matches('"')),
                    WorkloadKind::list()
                ),
            )
        })
    }

    /// The service's environment as `KEY=VALUE`, `env_file` first (as
    /// Compose does, `environment` wins), without the variables that set
    /// the credentials the driver logs in with.
    fn environment(
        &self,
        kind: WorkloadKind,
        image: &str,
        notes: &mut Vec<String>,
    ) -> Result<Vec<String>, ComposeError> {
        let mut vars: Vec<(String, String)> = Vec::new();
        let set = |vars: &mut Vec<(String, String)>, key: String, value: String| {
            vars.retain(|(k, _)| *k != key);
            vars.push((key, value));
        };
        if let Some(files) = &self.svc.env_file {
            for file in files.clone().into_list() {
                let file: compose_spec::service::env_file::Config = file.into_long();
                let path = resolve(self.dir, &file.path);
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(_) if !file.required => continue,
                    Err(e) => {
                        return Err(self.error(Some("env_file"), format!("cannot read {}: {e}", path.display())));
                    }
                };
                for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                    let line = line.strip_prefix("export ").unwrap_or(line);
                    match line.split_once('=') {
                        Some((k, v)) => set(&mut vars, k.trim().to_owned(), unquote(v.trim()).to_owned()),
                        None => {
                            if let Some(v) = (self.vars)(line) {
                                set(&mut vars, line.to_owned(), v);
                            }
                        }
                    }
                }
            }
        }
        let map = match self.svc.environment.clone() {
            ListOrMap::List(list) => ListOrMap::List(list).into_map(),
            map => map.into_map(),
        }
        .map_err(|e| self.error(Some("environment"), e))?;
        for (key, value) in map {
            let key = key.to_string();
            match value {
                Some(value) => set(&mut vars, key, value.to_string()),
                // `KEY` alone takes the value from the environment crashlab
                // runs in (or `.env`), as Compose does, and is left out when
                // unset.
                None => {
                    if let Some(v) = (self.vars)(&key) {
                        set(&mut vars, key, v);
                    }
                }
            }
        }
        let mut env: Vec<String> = Vec::new();
        if let Some(credentials) = crate::workload::driver_on(kind, image).credentials() {
            let (dropped, kept): (Vec<_>, Vec<_>) =
                vars.into_iter().partition(|(k, _)| credentials.vars.contains(&k.as_str()));
            vars = kept;
            if !dropped.is_empty() {
                let dropped: Vec<String> = dropped.into_iter().map(|(k, _)| k).collect();
                notes.push(format!(
                    "{} replaced by the driver's own credentials ({})",
                    backticked(&dropped),
                    credentials.login
                ));
            }
            env = credentials.env;
        }
        Ok(vars.into_iter().map(|(k, v)| format!("{k}={v}")).chain(env).collect())
    }

    /// The port the server listens on in the container, when it is not
    /// the driver's: the one container port the file names.
    fn port(&self, default: u16, notes: &mut Vec<String>) -> Result<Option<u16>, ComposeError> {
        let mut targets: Vec<u16> = Vec::new();
        let mut published = false;
        for port in ports::into_long_iter(self.svc.ports.clone()) {
            published |= port.published.is_some();
            if !targets.contains(&port.target) {
                targets.push(port.target);
            }
        }
        for expose in &self.svc.expose {
            let start = expose.range.start();
            if !targets.contains(&start) {
                targets.push(start);
            }
        }
        if published {
            notes.push(
                "host ports are not published as written: each cell publishes the server on a loopback port of its own"
                    .into(),
            );
        }
        if targets.is_empty() || targets.contains(&default) {
            return Ok(None);
        }
        if let [only] = targets[..] {
            return Ok(Some(only));
        }
        Err(self.error(
            Some("ports"),
            format!(
                "the container ports {} are none of them the driver's {default}; say which one the server listens on \
                 with `x-crashlab: {{ port: N }}`",
                targets.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// Where the data directory is mounted from (and the mount's target,
    /// when it is above the data directory), and the other host paths to
    /// bind in read-only as `HOST:CONTAINER`.
    fn mounts(
        &self,
        data_dir: &str,
        notes: &mut Vec<String>,
    ) -> Result<(Placement, Option<String>, Vec<String>), ComposeError> {
        let mut mounts: Vec<(PathBuf, Mounted)> = volumes::into_long_iter(self.svc.volumes.clone())
            .map(|m| match m {
                Mount::Volume(v) => {
                    (v.common.target.as_path().to_owned(), Mounted::Volume(v.source.map(|s| s.to_string())))
                }
                Mount::Bind(b) => {
                    (b.common.target.as_path().to_owned(), Mounted::Bind(resolve(self.dir, b.source.as_path())))
                }
                Mount::Tmpfs(t) => (t.common.target.as_path().to_owned(), Mounted::Tmpfs),
                Mount::NamedPipe(p) => (p.common.target.as_path().to_owned(), Mounted::Other("npipe")),
                Mount::Cluster(c) => (c.common.target.as_path().to_owned(), Mounted::Other("cluster")),
            })
            .collect();
        if let Some(tmpfs) = &self.svc.tmpfs {
            mounts.extend(tmpfs.clone().into_list().into_iter().map(|t| (t.as_path().to_owned(), Mounted::Tmpfs)));
        }
        // The deepest mount at or above the data directory holds the data.
        let data = Path::new(data_dir);
        let holder = (0..mounts.len())
            .filter(|&i| data.starts_with(&mounts[i].0))
            .max_by_key(|&i| mounts[i].0.components().count());
        let placement = match holder.map(|i| &mounts[i].1) {
            None => Placement::Unmounted,
            Some(Mounted::Volume(Some(name))) => self.named_volume(name, notes),
            Some(Mounted::Volume(None)) => Placement::Anonymous,
            Some(Mounted::Bind(source)) => {
                notes.push(format!(
                    "bind-mount runs on a directory crashlab creates and removes, never on {}",
                    source.display()
                ));
                Placement::Bind(source.clone())
            }
            Some(Mounted::Tmpfs) => Placement::Tmpfs,
            Some(Mounted::Other(kind)) => {
                return Err(self.error(
                    Some("volumes"),
                    format!("a `{kind}` mount holds the data directory {data_dir}; crashlab cannot test one"),
                ));
            }
        };
        let mut binds = Vec::new();
        for (i, (target, mounted)) in mounts.iter().enumerate() {
            if holder == Some(i) {
                continue;
            }
            let what = match mounted {
                Mounted::Bind(source) => {
                    let source = source
                        .canonicalize()
                        .map_err(|e| self.error(Some("volumes"), format!("bind source {}: {e}", source.display())))?;
                    binds.push(format!("{}:{}", source.display(), target.display()));
                    continue;
                }
                Mounted::Volume(Some(name)) => format!("volume `{name}`"),
                Mounted::Volume(None) => "an anonymous volume".into(),
                Mounted::Tmpfs => "a tmpfs".into(),
                Mounted::Other(kind) => format!("a {kind} mount"),
            };
            notes.push(format!(
                "{what} at {} is not carried over (only the data directory's mount is)",
                target.display()
            ));
        }
        if holder.is_none() && !mounts.is_empty() {
            notes.push(format!(
                "no mount covers the data directory {data_dir}; if the server keeps its data elsewhere, \
                 say where with `x-crashlab: {{ data-dir: /path }}`"
            ));
        }
        if !binds.is_empty() {
            notes.push(format!("{} host path(s) bound in read-only, so that the run cannot change them", binds.len()));
        }
        Ok((placement, holder.map(|i| mounts[i].0.display().to_string()), binds))
    }

    /// Where a named volume puts the data: a plain local volume, or the
    /// driver and options its top-level declaration gives.
    fn named_volume(&self, name: &str, notes: &mut Vec<String>) -> Placement {
        match self.compose.volumes.iter().find(|(k, _)| k.as_str() == name).map(|(_, v)| v) {
            Some(Some(Resource::External { .. })) => {
                notes.push(format!("named-volume runs on volumes crashlab creates, never on the external `{name}`"));
            }
            Some(Some(Resource::Compose(v)))
                if v.driver.as_deref().is_some_and(|d| d != "local") || !v.driver_opts.is_empty() =>
            {
                let driver = v.driver.clone().unwrap_or_else(|| "local".into());
                let options = v.driver_opts.iter().map(|(k, o)| (k.to_string(), o.to_string())).collect();
                notes.push(format!(
                    "volume `{name}` runs as the file declares it, on fresh volumes of driver `{driver}` with its \
                     driver_opts, created and removed by crashlab"
                ));
                return Placement::Driver { volume: name.to_owned(), driver, options };
            }
            _ => {}
        }
        Placement::Named(name.to_owned())
    }

    /// Keys that change how the service runs but are not carried over.
    fn unsupported_keys(&self, notes: &mut Vec<String>) {
        let s = self.svc;
        let present = [
            ("healthcheck", s.healthcheck.is_some()),
            ("restart", s.restart.is_some()),
            ("depends_on", !matches!(&s.depends_on, ShortOrLong::Short(set) if set.is_empty())),
            ("deploy", s.deploy.is_some()),
            ("cpus", s.cpus.is_some()),
            ("mem_limit", s.mem_limit.is_some()),
            ("shm_size", s.shm_size.is_some()),
            ("ulimits", !s.ulimits.is_empty()),
            ("read_only", s.read_only),
            ("stop_signal", s.stop_signal.is_some()),
            ("stop_grace_period", s.stop_grace_period.is_some()),
            ("sysctls", !s.sysctls.is_empty()),
            ("cap_add", !s.cap_add.is_empty()),
            ("privileged", s.privileged),
            ("working_dir", s.working_dir.is_some()),
            ("volumes_from", !s.volumes_from.is_empty()),
        ];
        let keys: Vec<String> = present.iter().filter(|(_, p)| *p).map(|(k, _)| (*k).to_owned()).collect();
        if !keys.is_empty() {
            notes.push(format!("not carried over: {}", backticked(&keys)));
        }
    }
}

impl ServicePlan {
    /// The scenario: the user's strategy first, then the smoke scenario's
    /// others, under the smoke scenario's faults and expectations.
    /// `image_volumes` are the paths the image declares `VOLUME`s, which
    /// decide where unmounted data lives.
    pub fn translate(&self, image_volumes: &[String]) -> Result<Translation, ComposeError> {
        let mut notes = self.notes.clone();
        let declared = image_volumes.iter().any(|v| Path::new(&self.data_dir).starts_with(v));
        let (yours, table) = self.your_strategy(declared, &mut notes);
        let mut strategies = vec![yours.clone()];
        // The durability table speaks of acknowledged writes, which a
        // service with no driver has none of: by default it runs where the
        // file puts its data only, each cell expected to pass its check.
        let own = !self.kind.def().workload().records_acks();
        if own {
            notes.push(format!(
                "crashlab has no driver for this service: its own program is the load ({} before each fault), and \
                 your `check` judges the recovered data; the acknowledgement-log oracle does not apply (no writes \
                 are sent or acknowledged)",
                self.workload.get("load").and_then(|v| v.as_str()).unwrap_or("2s")
            ));
        }
        let alternatives = if own { Vec::new() } else { ALTERNATIVES.to_vec() };
        for s in self.alternatives.clone().unwrap_or(alternatives) {
            if strategies.iter().any(|n| n == s.as_str()) {
                continue;
            }
            if s == Strategy::ContainerLayer && declared {
                notes.push(
                    "container-layer is left out: with the image's VOLUME, Docker never keeps this data in the \
                     writable layer"
                        .into(),
                );
                continue;
            }
            strategies.push(s.as_str().to_owned());
        }

        let mut workload = toml::Table::new();
        workload.insert("kind".into(), self.kind.as_str().into());
        workload.insert("image".into(), self.image.clone().into());
        if self.data_dir_set {
            workload.insert("data-dir".into(), self.data_dir.clone().into());
        }
        // The smoke scenario's load, unless `x-crashlab` says another.
        workload.insert("clients".into(), 4.into());
        workload.insert("load".into(), "2s".into());
        workload.extend(self.workload.clone());
        let mut matrix = toml::Table::new();
        matrix.insert("strategies".into(), strings(strategies));
        let mut faults: Vec<String> = DEFAULT_FAULTS.iter().map(|f| (*f).to_owned()).collect();
        if matches!(&self.placement, Placement::Driver { driver, .. } if driver == CRASHLAB_DRIVER) {
            // The fault filesystem is under the data: power loss can be
            // tested where the file puts it.
            faults.extend(["host-kill".into(), "torn-write".into()]);
        }
        matrix.insert("faults".into(), strings(faults));
        matrix.insert("cycles".into(), DEFAULT_CYCLES.into());
        matrix.extend(self.matrix.clone());
        let mut root = toml::Table::new();
        root.insert("name".into(), format!("compose-{}", self.service).into());
        root.insert("seed".into(), 42.into());
        root.insert("workload".into(), workload.into());
        root.insert("matrix".into(), matrix.into());
        if let Some(table) = table {
            root.insert("strategy".into(), toml::Value::Array(vec![table.into()]));
        }
        // The smoke scenario's expectations, as it writes them (without its
        // comments, which speak of the smoke scenario): the durability
        // table.
        let expectations: String = if own { "" } else { crate::scenario::SMOKE }
            .split_once("[[expect]]")
            .map(|(_, rest)| format!("[[expect]]{rest}"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut head = format!(
            "# Service `{}` of {} as crashlab runs it (`crashlab run --compose`);\n\
             # `crashlab run` on this file runs the same cells.\n",
            self.service, self.origin
        );
        for note in &notes {
            let _ = writeln!(head, "# Note: {note}.");
        }
        let body = format!("{head}{}\n{expectations}", toml::to_string(&root).unwrap_or_default());
        let scenario = Scenario::parse(&body, &format!("{} service {}", self.origin, self.service)).map_err(|e| {
            // All else was checked while planning: what fails here is a
            // value `x-crashlab` gave.
            let message = match e {
                crate::scenario::ScenarioError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            ComposeError::Invalid {
                location: self.x_location.clone(),
                message: format!("service `{}`: x-crashlab: {message}", self.service),
            }
        })?;
        let yours = scenario.matrix.strategies[0];
        Ok(Translation { scenario, toml: body, yours, notes })
    }

    /// The strategy the file implies, by name, and for a driver's volume
    /// the `[[strategy]]` table that defines it (named after the file's
    /// volume, unless that is a built-in strategy's name).
    fn your_strategy(&self, declared: bool, notes: &mut Vec<String>) -> (String, Option<toml::Table>) {
        let builtin = match &self.placement {
            Placement::Named(_) => Strategy::NamedVolume,
            Placement::Bind(_) => Strategy::BindMount,
            Placement::Tmpfs => Strategy::Tmpfs,
            Placement::Anonymous => Strategy::AnonymousVolume,
            Placement::Unmounted if declared => {
                notes.push(format!(
                    "the image declares a VOLUME over {}, so Docker keeps the data in an anonymous volume",
                    self.data_dir
                ));
                Strategy::AnonymousVolume
            }
            Placement::Unmounted => Strategy::ContainerLayer,
            Placement::Driver { volume, driver, options } => {
                let taken = Strategy::from_name(volume).is_some() || volume.contains(':');
                let name = if taken { format!("compose-{volume}") } else { volume.clone() };
                let mut table = toml::Table::new();
                table.insert("name".into(), name.clone().into());
                table.insert("driver".into(), driver.clone().into());
                if !options.is_empty() {
                    let opts: toml::Table = options.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
                    table.insert("driver-opts".into(), opts.into());
                }
                return (name, Some(table));
            }
        };
        (builtin.as_str().to_owned(), None)
    }
}

/// The workload an image's name implies: the first kind whose workload
/// recognises it ([`crashlab_workloads::Workload::recognises`]: MariaDB's
/// driver takes `mariadb`, `mysql` and `percona` images, PostgreSQL's
/// `postgres`, Redis's `redis` and `valkey`). The last part of the name
/// counts (`bitnami/mariadb`, `crashlab/postgres`), whatever the registry
/// and tag.
pub fn guess_kind(image: &str) -> Option<WorkloadKind> {
    WorkloadKind::all().find(|kind| kind.def().workload().recognises(image))
}

fn strings(items: impl IntoIterator<Item = String>) -> toml::Value {
    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// What a YAML value is, for messages.
fn yaml_kind(value: &YamlValue) -> &'static str {
    match value {
        YamlValue::Null => "nothing",
        YamlValue::Bool(_) => "a boolean",
        YamlValue::Number(_) => "a number",
        YamlValue::String(_) => "a string",
        YamlValue::Sequence(_) => "a list",
        YamlValue::Mapping(_) => "a mapping",
        YamlValue::Tagged(_) => "a tagged value",
    }
}

/// A YAML scalar or list of scalars as TOML.
fn yaml_to_toml(value: &YamlValue) -> Result<toml::Value, String> {
    Ok(match value {
        YamlValue::Bool(b) => (*b).into(),
        YamlValue::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(format!("{n} is out of range")),
        },
        YamlValue::String(s) => s.clone().into(),
        YamlValue::Sequence(items) => toml::Value::Array(items.iter().map(yaml_to_toml).collect::<Result<_, _>>()?),
        YamlValue::Null => return Err("has no value".into()),
        YamlValue::Mapping(_) | YamlValue::Tagged(_) => return Err("expected a value or a list".into()),
    })
}

/// Splits a `command:` string as Compose does for the plain cases: at
/// whitespace, with quotes grouping. Backslashes are refused rather than
/// guessed at; a `$` left after interpolation (`$$`) is kept, as Compose
/// keeps it.
fn split_command(s: &str) -> Result<Vec<String>, String> {
    if s.contains('\\') {
        return Err(format!("write `command: {}` as a list; crashlab does not split it", one_line(s)));
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("`command: {}` has an unclosed quote", one_line(s)));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The 1-based line and column of `key` in service `service` (or of the
/// service's own line), found by indentation; (1, 1) when not found.
fn service_key_line(text: &str, service: &str, key: Option<&str>) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let starts = |l: &str, name: &str| {
        let t = l.trim_start();
        [name.to_owned(), format!("\"{name}\""), format!("'{name}'")]
            .iter()
            .any(|n| t.strip_prefix(n.as_str()).is_some_and(|rest| rest.trim_start().starts_with(':')))
    };
    let Some(services) = lines.iter().position(|l| indent(l) == 0 && starts(l, "services")) else {
        return (1, 1);
    };
    let Some(at) = (services + 1..lines.len()).find(|&i| indent(lines[i]) > 0 && starts(lines[i], service)) else {
        return (services + 1, 1);
    };
    let own = indent(lines[at]);
    let Some(key) = key else {
        return (at + 1, own + 1);
    };
    for (i, line) in lines.iter().enumerate().skip(at + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent(line) <= own {
            break;
        }
        if starts(line, key) {
            return (i + 1, indent(line) + 1);
        }
    }
    (at + 1, own + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    /// A one-service file: `image` and `extra` lines under the service.
    fn file(extra: &str) -> String {
        let extra: String = extra.lines().map(|l| format!("    {l}\n")).collect();
        format!("services:\n  db:\n{extra}volumes:\n  db-data:\n")
    }

    fn kind(name: &str) -> WorkloadKind {
        WorkloadKind::named(name).unwrap()
    }

    /// No variable is set: the tests never read crashlab's environment.
    fn unset(_: &str) -> Option<String> {
        None
    }

    fn plan(yaml: &str) -> Result<ServicePlan, ComposeError> {
        parse(yaml, "dc.yml", Path::new("/"), Some("db"), &unset)
    }

    fn translate(yaml: &str, image_volumes: &[&str]) -> Result<Translation, ComposeError> {
        let volumes: Vec<String> = image_volumes.iter().map(|v| (*v).to_owned()).collect();
        plan(yaml)?.translate(&volumes)
    }

    fn error(yaml: &str, image_volumes: &[&str]) -> String {
        translate(yaml, image_volumes).expect_err("an error").to_string()
    }

    #[test]
    fn the_mount_over_the_data_directory_is_your_configuration() {
        use Strategy::*;
        // (the service, the image's VOLUMEs, your configuration, strategies in all)
        let cases: &[(&str, &[&str], Strategy, usize)] = &[
            ("image: mariadb:11\nvolumes: [\"db-data:/var/lib/mysql\"]", &[], NamedVolume, 5),
            (
                "image: mariadb:11\nvolumes:\n  - type: volume\n    source: db-data\n    target: /var/lib/mysql",
                &[],
                NamedVolume,
                5,
            ),
            ("image: mariadb:11\nvolumes: [\"./data:/var/lib/mysql\"]", &[], BindMount, 5),
            ("image: mariadb:11\nvolumes: [\"/srv/db:/var/lib/mysql\"]", &[], BindMount, 5),
            ("image: mariadb:11\ntmpfs: /var/lib/mysql", &[], Tmpfs, 5),
            ("image: mariadb:11\ntmpfs: [/run, /var/lib/mysql]", &[], Tmpfs, 5),
            ("image: mariadb:11\nvolumes:\n  - type: tmpfs\n    target: /var/lib/mysql", &[], Tmpfs, 5),
            ("image: mariadb:11", &[], ContainerLayer, 5),
            ("image: mariadb:11", &["/var/lib/mysql"], AnonymousVolume, 4),
            ("image: mariadb:11\nvolumes: [/var/lib/mysql]", &[], AnonymousVolume, 5),
            // A mount above the data directory holds it.
            ("image: mariadb:11\nvolumes: [\"db-data:/var/lib\"]", &[], NamedVolume, 5),
            // A mount elsewhere does not.
            ("image: mariadb:11\nvolumes: [\"db-data:/srv\"]", &[], ContainerLayer, 5),
            ("image: postgres:16\nvolumes: [\"db-data:/var/lib/postgresql/data\"]", &[], NamedVolume, 5),
            ("image: redis:7\nvolumes: [\"db-data:/data\"]", &[], NamedVolume, 5),
            (
                "image: mariadb:11\nvolumes: [\"db-data:/data\"]\nx-crashlab: { data-dir: /data }",
                &["/var/lib/mysql"],
                NamedVolume,
                5,
            ),
        ];
        for (service, image_volumes, yours, all) in cases {
            let t = translate(&file(service), image_volumes).unwrap_or_else(|e| panic!("{service}: {e}"));
            assert_eq!(t.yours, *yours, "{service}");
            let strategies = &t.scenario.matrix.strategies;
            assert_eq!(strategies[0], *yours, "yours comes first: {service}");
            assert_eq!(strategies.len(), *all, "{service}: {strategies:?}");
        }
    }

    #[test]
    fn the_service_s_settings_become_the_scenario_s() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("my.cnf"), "[mysqld]\n").unwrap();
        std::fs::write(dir.path().join("db.env"), "# comment\nTZ=UTC\nMARIADB_ROOT_PASSWORD=fromfile\n").unwrap();
        let yaml = file(
            "image: registry.example/team/mariadb:11.4\n\
             command: mariadbd --innodb-flush-log-at-trx-commit=2 --sync-binlog=0\n\
             user: \"999:999\"\n\
             env_file: db.env\n\
             environment:\n  MARIADB_ROOT_PASSWORD: secret\n  MARIADB_DATABASE: app\n\
             ports: [\"13306:3306\"]\n\
             volumes:\n  - db-data:/var/lib/mysql\n  - ./my.cnf:/etc/mysql/conf.d/my.cnf:ro\n  - logs:/var/log/mysql\n\
             healthcheck:\n  test: [\"CMD\", \"true\"]\n\
             restart: always\n\
             x-crashlab: { faults: [recreate], cycles: 1, load: 1s }",
        );
        let t = parse(&yaml, "dc.yml", dir.path(), Some("db"), &unset).unwrap().translate(&[]).unwrap();
        let w = &t.scenario.workload;
        assert_eq!(w.kind, kind("mariadb"), "guessed from the image's name");
        assert_eq!(w.image.as_deref(), Some("registry.example/team/mariadb:11.4"));
        assert_eq!(
            w.command.as_deref().unwrap(),
            ["mariadbd", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"]
        );
        assert_eq!(w.user.as_deref(), Some("999:999"));
        assert_eq!(w.env, ["TZ=UTC", "MARIADB_DATABASE=app"], "the password is the driver's");
        assert_eq!(w.port, None, "3306 is the driver's own");
        assert_eq!(w.data_dir, None);
        assert_eq!(w.load, std::time::Duration::from_secs(1));
        assert_eq!(w.binds.len(), 1);
        assert_eq!(w.binds[0].target, "/etc/mysql/conf.d/my.cnf");
        assert!(w.binds[0].source.ends_with("/my.cnf"));
        assert_eq!(t.scenario.matrix.faults, [Fault::Recreate]);
        assert_eq!(t.scenario.matrix.cycles, 1);
        let notes = t.notes.join("\n");
        for said in [
            "`MARIADB_ROOT_PASSWORD` replaced by the driver's own credentials",
            "host ports are not published as written",
            "volume `logs` at /var/log/mysql is not carried over",
            "1 host path(s) bound in read-only",
            "not carried over: `healthcheck`, `restart`",
        ] {
            assert!(notes.contains(said), "{said}: {notes}");
        }
        // The TOML beside the report runs the same scenario.
        let again = Scenario::parse(&t.toml, "scenario.toml").unwrap();
        assert_eq!(again, t.scenario);
    }

    #[test]
    fn the_defaults_are_the_smoke_scenario_s_faults_cycles_and_expectations() {
        let t = translate(&file("image: mariadb:11\nvolumes: [\"db-data:/var/lib/mysql\"]"), &[]).unwrap();
        let smoke = Scenario::parse(crate::scenario::SMOKE, "smoke.toml").unwrap();
        assert_eq!(t.scenario.matrix.faults, smoke.matrix.faults);
        assert_eq!(t.scenario.matrix.cycles, smoke.matrix.cycles);
        assert_eq!(t.scenario.expect, smoke.expect);
        assert_eq!((t.scenario.workload.load, t.scenario.workload.clients), (smoke.workload.load, 4));
        assert_eq!(
            t.scenario.matrix.strategies,
            [
                Strategy::NamedVolume,
                Strategy::ContainerLayer,
                Strategy::AnonymousVolume,
                Strategy::BindMount,
                Strategy::Tmpfs
            ]
        );
    }

    #[test]
    fn the_kind_comes_from_x_crashlab_or_the_image_s_name() {
        let cases = [
            ("mariadb", Some(kind("mariadb"))),
            ("docker.io/library/mariadb:11.4", Some(kind("mariadb"))),
            ("bitnami/mysql:8.0", Some(kind("mariadb"))),
            ("crashlab/postgres:latest", Some(kind("postgres"))),
            ("postgres@sha256:abcd", Some(kind("postgres"))),
            ("localhost:5000/redis:7", Some(kind("redis"))),
            ("valkey/valkey:8", Some(kind("redis"))),
            ("foo/bar:1", None),
            ("mariadbish", None),
            ("postgis/postgis", None),
        ];
        for (image, kind) in cases {
            assert_eq!(guess_kind(image), kind, "{image}");
        }
        let t = translate(&file("image: foo/bar:1\nx-crashlab:\n  kind: postgres"), &[]).unwrap();
        assert_eq!(t.scenario.workload.kind, kind("postgres"));
        let t = translate(&file("image: mariadb:11\nx-crashlab: { kind: redis }"), &[]).unwrap();
        assert_eq!(t.scenario.workload.kind, kind("redis"), "x-crashlab wins over the name");
    }

    #[test]
    fn the_driver_s_credentials_replace_the_file_s_as_each_workload_says() {
        // (the service, the environment the scenario keeps, the note)
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            (
                "image: mysql:8.0\nenvironment: [MYSQL_ROOT_PASSWORD=secret, MYSQL_DATABASE=app]",
                &["MYSQL_DATABASE=app", "MYSQL_ROOT_PASSWORD=crashlab", "MYSQL_ROOT_HOST=%"],
                Some("`MYSQL_ROOT_PASSWORD` replaced by the driver's own credentials (root/crashlab)"),
            ),
            ("image: percona-server:8", &["MYSQL_ROOT_PASSWORD=crashlab", "MYSQL_ROOT_HOST=%"], None),
            ("image: mariadb:11\nenvironment: [TZ=UTC]", &["TZ=UTC"], None),
            (
                "image: postgres:16\nenvironment: [POSTGRES_USER=app, POSTGRES_DB=app]",
                &["POSTGRES_DB=app"],
                Some("`POSTGRES_USER` replaced by the driver's own credentials (postgres/crashlab)"),
            ),
            ("image: redis:7\nenvironment: [REDIS_PASSWORD=x]", &["REDIS_PASSWORD=x"], None),
        ];
        for (service, env, note) in cases {
            let t = translate(&file(service), &[]).unwrap_or_else(|e| panic!("{service}: {e}"));
            assert_eq!(t.scenario.workload.env, *env, "{service}");
            let replaced: Vec<&String> = t.notes.iter().filter(|n| n.contains("replaced by")).collect();
            assert_eq!(replaced.first().map(|n| n.as_str()), *note, "{service}");
        }
    }

    #[test]
    fn a_port_other_than_the_driver_s_is_the_one_the_file_names() {
        let port = |extra: &str| {
            translate(&file(&format!("image: mariadb:11\n{extra}")), &[]).map(|t| t.scenario.workload.port)
        };
        assert_eq!(port("ports: [\"3307:3306\"]").unwrap(), None);
        assert_eq!(port("ports: [\"3307:3307\"]").unwrap(), Some(3307));
        assert_eq!(port("expose: [\"3310\"]").unwrap(), Some(3310));
        assert_eq!(port("ports: [\"8080:80\", \"9090:90\"]\nx-crashlab: { port: 3399 }").unwrap(), Some(3399));
        assert!(port("ports: [\"8080:80\", \"9090:90\"]").is_err());
    }

    #[test]
    fn errors_name_the_service_the_key_and_the_line() {
        let errors: Vec<(&str, String)> = vec![
            ("unknown image", error(&file("image: foo/bar:1"), &[])),
            ("no image", error(&file("build: ."), &[])),
            ("check of a number", error(&file("image: shop:1\nx-crashlab:\n  check: 7"), &[])),
            ("check of a mapping", error(&file("image: shop:1\nx-crashlab: { check: { run: x } }"), &[])),
            ("check with a number in it", error(&file("image: shop:1\nx-crashlab:\n  check: [exit, 1]"), &[])),
            ("empty check", error(&file("image: shop:1\nx-crashlab:\n  check: []"), &[])),
            ("check with a driver", error(&file("image: x\nx-crashlab:\n  kind: mariadb\n  check: [\"true\"]"), &[])),
            ("app without check", error(&file("image: shop:1\nx-crashlab: { kind: app }"), &[])),
            (
                "check, mounts unclear",
                error(&file("image: shop:1\nvolumes: [\"a:/a\", \"b:/b\"]\nx-crashlab: { check: \"true\" }"), &[]),
            ),
            ("unknown kind", error(&file("image: mariadb:11\nx-crashlab: { kind: oracle }"), &[])),
            ("unknown x key", error(&file("image: mariadb:11\nx-crashlab: { kinds: mariadb }"), &[])),
            ("bad x value", error(&file("image: mariadb:11\nx-crashlab: { clients: 0 }"), &[])),
            ("bad x faults", error(&file("image: mariadb:11\nx-crashlab: { faults: [reboot] }"), &[])),
            ("ambiguous ports", error(&file("image: mariadb:11\nports: [\"8080:80\", \"9090:90\"]"), &[])),
            ("missing bind", error(&file("image: mariadb:11\nvolumes: [\"./nope.cnf:/etc/my.cnf\"]"), &[])),
            ("unclosed quote", error(&file("image: mariadb:11\ncommand: mariadbd \"--x"), &[])),
            ("unknown key", error(&file("image: mariadb:11\nimgae: x"), &[])),
            ("bad value", error(&file("image: mariadb:11\nvolumes: [\"db-data:relative\"]"), &[])),
            (
                "no such service",
                parse(&file("image: x"), "dc.yml", Path::new("/"), Some("web"), &unset).unwrap_err().to_string(),
            ),
            (
                "which service",
                parse("services:\n  a:\n    image: x\n  b:\n    image: y\n", "dc.yml", Path::new("/"), None, &unset)
                    .unwrap_err()
                    .to_string(),
            ),
            ("not yaml", error("services: [\n", &[])),
        ];
        let text: String = errors.iter().map(|(case, e)| format!("{case}: {e}\n")).collect();
        insta::assert_snapshot!(text);
    }

    /// A service crashlab has no driver for runs as it is (kind `app`),
    /// judged by the user's `check`: a list, or a string split as
    /// `command` is; its data where its only mount is; only where the file
    /// puts it, with no durability-table expectations; and the notes say
    /// that the ack-log oracle does not apply.
    #[test]
    fn a_check_makes_a_service_with_no_driver_testable() {
        let t = translate(
            &file(
                "image: registry.example/shop:1\nentrypoint: [\"sh\", \"-c\"]\ncommand: [\"run-shop\"]\n\
                 ports: [\"8080:80\", \"9090:90\"]\nvolumes: [\"db-data:/srv/shop\", \"./shop.cnf:/etc/shop.cnf\"]\n\
                 x-crashlab:\n  check: [\"shop-fsck\", \"/srv/shop\"]\n  check-timeout: 20s",
            )
            .replace("./shop.cnf", "/etc/hostname"),
            &[],
        )
        .unwrap();
        let w = &t.scenario.workload;
        assert_eq!(w.kind, kind("app"));
        assert_eq!(w.check.as_deref().unwrap(), ["shop-fsck", "/srv/shop"]);
        assert_eq!(w.check_timeout, std::time::Duration::from_secs(20));
        assert_eq!(w.entrypoint.as_deref().unwrap(), ["sh", "-c"]);
        assert_eq!(w.command.as_deref().unwrap(), ["run-shop"]);
        assert_eq!(w.data_dir.as_deref(), Some("/srv/shop"), "its only volume");
        assert_eq!(w.port, None, "nothing is sent to it: its ports do not matter");
        assert_eq!(t.yours, Strategy::NamedVolume);
        assert_eq!(t.scenario.matrix.strategies, [Strategy::NamedVolume], "yours alone");
        assert!(t.scenario.expect.is_empty(), "each cell expected to pass its check");
        let notes = t.notes.join("\n");
        assert!(notes.contains("the acknowledgement-log oracle does not apply"), "{notes}");
        assert_eq!(Scenario::parse(&t.toml, "again").unwrap(), t.scenario);

        // A string, split as `command` is; `kind: app` said outright.
        let t = translate(
            &file("image: shop:1\ntmpfs: /data\nx-crashlab:\n  kind: app\n  check: sh -c 'test -s /data/x'"),
            &[],
        )
        .unwrap();
        assert_eq!(t.scenario.workload.check.as_deref().unwrap(), ["sh", "-c", "test -s /data/x"]);
        assert_eq!(t.yours, Strategy::Tmpfs);
        // Alternatives when named; on crashlab's driver, power loss too.
        let t = translate(
            &file(
                "image: shop:1\nvolumes: [\"db-data:/data\"]\nx-crashlab: { check: \"true\", alternatives: [tmpfs] }",
            )
            .replace("volumes:\n  db-data:\n", "volumes:\n  db-data:\n    driver: crashlab\n"),
            &[],
        )
        .unwrap();
        assert_eq!(t.scenario.matrix.strategies.len(), 2);
        let faults: Vec<&str> = t.scenario.matrix.faults.iter().map(|f| f.as_str()).collect();
        assert_eq!(faults, ["process-kill", "restart", "recreate", "host-kill", "torn-write"]);
    }

    #[test]
    fn command_strings_split_like_compose_s_plain_cases() {
        assert_eq!(split_command("a  'b c' \"d\"e").unwrap(), ["a", "b c", "de"]);
        assert_eq!(split_command("").unwrap(), Vec::<String>::new());
        assert_eq!(split_command("a $HOME").unwrap(), ["a", "$HOME"], "the `$` of a `$$`, kept");
        assert!(split_command("a \\ b").is_err());
    }

    #[test]
    fn an_interpolated_image_and_bind_decide_the_driver_and_the_strategy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let yaml = file(
            "image: ${DB_IMAGE:-mariadb}:${TAG:-11}\n\
             environment:\n  MARIADB_DATABASE: ${DB_NAME}\n  PRICE: $$5\n  TZ:\n\
             volumes: [\"${DIR:-./data}:/var/lib/mysql\"]\n\
             command: [\"--log-bin=${BINLOG-}\"]",
        );
        let plan_with = |vars: &'static [(&'static str, &'static str)]| {
            let lookup = move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
            parse(&yaml, "dc.yml", dir.path(), Some("db"), &lookup).unwrap()
        };

        // Nothing set: the defaults.
        let p = plan_with(&[]);
        assert_eq!((p.kind, p.image.as_str()), (kind("mariadb"), "mariadb:11"));
        assert_eq!(p.placement, Placement::Bind(dir.path().join("data")));
        let t = p.translate(&[]).unwrap();
        assert_eq!(t.yours, Strategy::BindMount);
        assert_eq!(t.scenario.workload.env, ["MARIADB_DATABASE=", "PRICE=$5"], "`TZ` alone is unset: left out");
        assert_eq!(t.scenario.workload.command.as_deref().unwrap(), ["--log-bin="]);
        let notes = t.notes.join("\n");
        assert!(
            notes.contains("the variable `DB_NAME` is not set: `environment.MARIADB_DATABASE` took a blank string"),
            "{notes}"
        );
        assert!(!notes.contains("`BINLOG`"), "a `-` default is no blank: {notes}");
        assert!(t.toml.contains("# Note: the variable `DB_NAME` is not set"), "{}", t.toml);

        // Set: the values, here a PostgreSQL image on a named volume.
        let p = plan_with(&[
            ("DB_IMAGE", "registry.example/postgres"),
            ("TAG", "16"),
            ("DIR", "db-data"),
            ("DB_NAME", "app"),
            ("TZ", "UTC"),
        ]);
        assert_eq!((p.kind, p.image.as_str()), (kind("postgres"), "registry.example/postgres:16"));
        // The mount is over MariaDB's directory, not PostgreSQL's.
        assert_eq!(p.placement, Placement::Unmounted);
        let yaml = yaml.replace("/var/lib/mysql", "/var/lib/postgresql/data");
        let lookup = |name: &str| match name {
            "DB_IMAGE" => Some("postgres".to_owned()),
            "DIR" => Some("db-data".to_owned()),
            _ => None,
        };
        let p = parse(&yaml, "dc.yml", dir.path(), Some("db"), &lookup).unwrap();
        assert_eq!(p.placement, Placement::Named("db-data".into()));
        assert_eq!(p.translate(&[]).unwrap().yours, Strategy::NamedVolume);
    }

    /// A named volume declared with a driver (crashlab's own, say) is the
    /// driver's volume with the file's options, as a `[[strategy]]` table
    /// named after it; `local` with options is too; plain `local` is
    /// `named-volume`.
    #[test]
    fn a_volume_declared_with_a_driver_runs_on_that_driver() {
        let service = "services:\n  db:\n    image: mariadb:11\n    volumes: [\"db-data:/var/lib/mysql\"]\n";
        let t = translate(
            &format!("{service}volumes:\n  db-data:\n    driver: crashlab\n    driver_opts: {{ fsync-reaches-disk: \"true\" }}\n"),
            &[],
        )
        .unwrap();
        let Strategy::Volume(v) = t.yours else { panic!("a driver volume: {:?}", t.yours) };
        assert_eq!((v.name.as_str(), v.driver.as_str()), ("db-data", "crashlab"));
        assert_eq!(v.options, [("fsync-reaches-disk".to_owned(), "true".to_owned())]);
        assert_eq!(t.scenario.matrix.strategies.len(), 6, "the five built-in ones beside it");
        assert!(t.notes.iter().any(|n| n.contains("on fresh volumes of driver `crashlab`")), "{:?}", t.notes);
        let faults: Vec<&str> = t.scenario.matrix.faults.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            faults,
            ["process-kill", "restart", "recreate", "host-kill", "torn-write"],
            "power loss where crashlab's driver is"
        );
        // The equivalent scenario carries the table and reads back the same.
        let again = Scenario::parse(&t.toml, "again").unwrap();
        assert_eq!(again.matrix.strategies, t.scenario.matrix.strategies);

        let t = translate(
            &format!("{service}volumes:\n  db-data:\n    driver_opts: {{ type: tmpfs, device: tmpfs }}\n"),
            &[],
        )
        .unwrap();
        let Strategy::Volume(v) = t.yours else { panic!("a driver volume: {:?}", t.yours) };
        assert_eq!(v.driver, "local");
        assert_eq!(v.options.len(), 2);
        let t = translate(&format!("{service}volumes:\n  db-data:\n    driver: local\n"), &[]).unwrap();
        assert_eq!(t.yours, Strategy::NamedVolume);
        // A volume named as a built-in strategy keeps its table apart.
        let t = translate(
            &format!("{}volumes:\n  tmpfs:\n    driver: crashlab\n", service.replace("db-data", "tmpfs")),
            &[],
        )
        .unwrap();
        assert_eq!(t.yours.as_str(), "compose-tmpfs");
    }

    #[test]
    fn blanks_are_noted_for_the_service_and_the_top_level_keys_once_each() {
        let yaml = "services:\n  db:\n    image: mariadb:11${SUFFIX}\n    command: [\"--x=$SUFFIX\"]\n  \
                    web:\n    image: nginx${WEB_TAG}\nvolumes:\n  db-data:\n    name: data${VOL}\n";
        let notes = plan(yaml).unwrap().notes;
        assert_eq!(
            notes,
            [
                "the variable `SUFFIX` is not set: `image` took a blank string for it",
                "the variable `VOL` is not set: `volumes.db-data.name` took a blank string for it",
            ]
        );
    }

    #[test]
    fn the_environment_wins_over_the_dot_env_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "# the project's\nTAG=from-dotenv\nexport ONLY=\"dotenv ${TAG}\"\n")
            .unwrap();
        let env = |name: &str| (name == "TAG").then(|| "from-env".to_owned());
        let vars = Variables::read(dir.path(), &env).unwrap();
        assert_eq!(vars.get("TAG").as_deref(), Some("from-env"));
        assert_eq!(vars.get("ONLY").as_deref(), Some("dotenv from-dotenv"), "the file's own value, above the line");
        assert_eq!(vars.get("NEITHER"), None);
        let p = parse(&file("image: mariadb:${TAG}\nenvironment: [ONLY]"), "dc.yml", dir.path(), Some("db"), &|n| {
            vars.get(n)
        })
        .unwrap();
        assert_eq!(p.image, "mariadb:from-env");
        assert_eq!(p.translate(&[]).unwrap().scenario.workload.env, ["ONLY=dotenv from-dotenv"], "`KEY` alone too");

        // No `.env`: the environment alone.
        let none = tempfile::tempdir().unwrap();
        assert_eq!(Variables::read(none.path(), &env).unwrap().get("ONLY"), None);
        // A `.env` line that is not KEY=VALUE names the file and the line.
        std::fs::write(dir.path().join(".env"), "A=1\nnot a variable\n").unwrap();
        let e = Variables::read(dir.path(), &env).err().expect("an error").to_string();
        assert_eq!(e, format!("{}:2: `not a variable` is not KEY=VALUE", dir.path().join(".env").display()));
    }

    /// A variable gives a string; where `x-crashlab` takes a whole number,
    /// the string is read as one, and one that is not a number is an
    /// error naming the key and the line.
    #[test]
    fn x_crashlab_numbers_may_come_from_variables() {
        let yaml = file("image: mariadb:11\nx-crashlab:\n  cycles: ${N:-3}\n  clients: \"${C}\"\n  port: \" 3307\"");
        let vars = |name: &str| (name == "C").then(|| "2".to_owned());
        let t = parse(&yaml, "dc.yml", Path::new("/"), Some("db"), &vars).unwrap().translate(&[]).unwrap();
        assert_eq!(t.scenario.matrix.cycles, 3);
        assert_eq!(t.scenario.workload.clients, 2);
        assert_eq!(t.scenario.workload.port, Some(3307));

        let e = error(&file("image: mariadb:11\nx-crashlab:\n  cycles: ${N:-many}"), &[]);
        assert!(
            e.starts_with("dc.yml:4:") && e.ends_with("x-crashlab: `cycles` takes a whole number, got `many`"),
            "{e}"
        );
    }

    /// `--env-file` replaces the project's `.env`, as in `docker compose`,
    /// and a file named there that is missing is an error that names it.
    #[test]
    fn an_env_file_named_on_the_command_line_replaces_the_dot_env_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "TAG=from-dotenv\nONLY_DOTENV=1\n").unwrap();
        let compose = dir.path().join("dc.yml");
        std::fs::write(&compose, file("image: mariadb:${TAG:-none}\nenvironment: [ONLY_DOTENV]")).unwrap();
        let staging = dir.path().join("staging.env");
        std::fs::write(&staging, "TAG=from-staging\n").unwrap();

        assert_eq!(load(&compose, Some("db"), None).unwrap().image, "mariadb:from-dotenv");
        let p = load(&compose, Some("db"), Some(&staging)).unwrap();
        assert_eq!(p.image, "mariadb:from-staging");
        assert!(p.translate(&[]).unwrap().scenario.workload.env.is_empty(), "`.env` was not read");

        let missing = dir.path().join("prod.env");
        let Err(e) = load(&compose, Some("db"), Some(&missing)) else { panic!("a missing --env-file is an error") };
        let e = e.to_string();
        assert!(e.starts_with(&format!("cannot read the variables file {}: ", missing.display())), "{e}");
    }

    #[test]
    fn interpolation_errors_name_the_file_the_line_and_the_variable() {
        let e = |extra: &str| error(&file(&format!("image: mariadb:11\n{extra}")), &[]);
        assert_eq!(
            e("# ${DB_NAME:?is never read here}\nenvironment:\n  MARIADB_DATABASE: ${DB_NAME:?set DB_NAME in .env}"),
            "dc.yml:6:25: required variable `DB_NAME` is missing a value: set DB_NAME in .env"
        );
        assert_eq!(e("user: \"${UID\""), "dc.yml:4:12: `${UID` has no closing `}`");
        assert_eq!(
            e("user: ${9}"),
            "dc.yml:4:11: `${9}`: a variable's name is letters, digits and `_`, not starting with a digit"
        );
        // A blank the Compose reader refuses is named as the likely cause.
        assert_eq!(
            e("user: \"${UID}:${GID-}\""),
            "dc.yml: user and group names cannot be empty (not set, so taken as blank strings: `UID`)"
        );
        // The error is the file's, whichever service is asked for.
        let yaml = "services:\n  db:\n    image: mariadb:11\n  web:\n    image: ${WEB:?}\n";
        assert_eq!(
            parse(yaml, "dc.yml", Path::new("/"), Some("db"), &unset).unwrap_err().to_string(),
            "dc.yml:5:12: required variable `WEB` is missing a value"
        );
    }

    #[test]
    fn the_line_of_a_service_s_key_is_found_by_indentation() {
        let text = "services:\n  web:\n    image: x\n  db:\n    # c\n    image: y\n    x-crashlab: {}\nvolumes: {}\n";
        assert_eq!(service_key_line(text, "db", Some("x-crashlab")), (7, 5));
        assert_eq!(service_key_line(text, "db", Some("image")), (6, 5));
        assert_eq!(service_key_line(text, "db", None), (4, 3));
        assert_eq!(service_key_line(text, "db", Some("ports")), (4, 3));
    }
}
