//! The command-line flags of the settings in [`crate::config::Config`], grouped by what a command
//! needs. Each is optional: a flag given wins over the environment and the file; one not given is
//! left out (`skip_serializing_if`) so it hides nothing below it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::{Config, ConfigError, Role};

/// The text shown under every command's help.
pub const SETTINGS_HELP: &str = "Every setting can also be given as an IYSHUB_<NAME> environment \
variable (IYSHUB_DATABASE_URL, IYSHUB_BIND, …) or as a snake_case key in the config file \
(--config FILE, IYSHUB_CONFIG, or ./iyshub.toml when present). Flags win over the environment, \
which wins over the file.";

/// Where the settings and the database are.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct DbFlags {
    /// A TOML file of settings (snake_case keys); ./iyshub.toml when present.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// `postgres://…` for PostgreSQL; SQLite under the data directory when absent.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// Where the SQLite database and its secret key live (default ./iyshub-data).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
}

impl DbFlags {
    /// The settings with these flags on top.
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), self)
    }
}

/// How the hub reaches IYS.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct IysFlags {
    /// A real IYS (https://api.iys.org.tr or the sandbox); the built-in simulator when absent.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    iys_url: Option<String>,
    /// The IYS API user (`demo` for the simulator).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    iys_username: Option<String>,
    /// The IYS API user's password (`demo-password` for the simulator). Prefer the environment:
    /// flags show in process lists.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    iys_password: Option<String>,
    /// The simulator's address, when it is used (default 127.0.0.1:8090).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sim_bind: Option<SocketAddr>,
    /// 32 bytes (64 hex characters or base64) that seal brands' IYS passwords at rest. With
    /// SQLite and none given, one is made at first start and kept in the data directory.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
    /// More IYS base URLs brands may use, comma-separated (IYS's production and sandbox hosts
    /// and the built-in simulator are always allowed).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    iys_allowed_urls: Vec<String>,
}

/// What only `iyshub serve` uses.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct ServeFlags {
    /// Address of the REST API (default 127.0.0.1:8080).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<SocketAddr>,
    /// The simulator's profile: fast (default: changes reach it in seconds) or realistic.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sim_profile: Option<iys_sim::Profile>,
    /// Use this admin API key instead of generating one at first start.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_key: Option<String>,
    /// `all` (API and IYS engines), `api` (API only) or `worker` (IYS engines only).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    /// Seconds between reads of IYS's changes feed (default 60; 5 with the fast simulator).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pull_interval_secs: Option<u64>,
    /// Where `/metrics` is served without a key (default 127.0.0.1:9464; `off` to serve it only
    /// on the API, with the provider's admin key).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_bind: Option<String>,
    /// Requests per second one API key may make (0: no limit; default 2000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<u32>,
    /// Seconds after a bulk submission before its result is read: 300 for IYS's hosts (IYS's
    /// rule), the simulator's own setting when the IYS URL is a simulator.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    iys_bulk_poll_min_secs: Option<u64>,
    /// How long API keys, brands and categories are cached, in milliseconds (0: not at all;
    /// default 2000). A change made on another instance is seen within this time.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_ttl_ms: Option<u64>,
    /// NATS with JetStream to publish change events to (subject `iyshub.<brandCode>.consent`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    nats_url: Option<String>,
}

/// The database and IYS, for commands that run the IYS engines once.
#[derive(Debug, Default, clap::Args, Serialize)]
pub struct EngineFlags {
    #[command(flatten)]
    #[serde(flatten)]
    pub db: DbFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub iys: IysFlags,
}

impl EngineFlags {
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(self.db.config.as_deref(), self)
    }
}
