//! The hub's settings, one typed [`Config`] for every command that opens the database or reaches
//! IYS (`serve`, `migrate`, `verify`, `backfill`, `reconcile`, `iys …`).
//!
//! Layers, later ones winning: built-in defaults, the TOML file (`--config FILE` or
//! `IYSHUB_CONFIG`, else `./iyshub.toml` when present; snake_case keys), `IYSHUB_*` environment
//! variables, flags. figment merges them and names the setting and where it came from in every
//! error ("invalid socket address syntax for key IYSHUB_BIND in the environment").
//!
//! Environment values are taken as text, never guessed at: figment's own environment provider
//! reads `IYSHUB_ADMIN_KEY=0012` as the number 12, which would change a secret.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize};

/// The file read when neither `--config` nor `IYSHUB_CONFIG` names one.
const DEFAULT_FILE: &str = "iyshub.toml";

/// Every setting, resolved. Field names are the file's keys and, upper-cased after `IYSHUB_`,
/// the environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `postgres://…` for PostgreSQL; SQLite in `data_dir` when absent.
    pub database_url: Option<Hidden>,
    /// Where the embedded default keeps its files (the SQLite database, `secret.key`).
    pub data_dir: PathBuf,
    /// The REST API.
    pub bind: SocketAddr,
    /// A real IYS; the built-in simulator at `sim_bind` when absent.
    pub iys_url: Option<String>,
    pub iys_username: Option<String>,
    pub iys_password: Option<Hidden>,
    /// The service provider's IYS number (`iyshub iys …`).
    pub iys_code: u64,
    pub sim_bind: SocketAddr,
    pub sim_profile: iys_sim::Profile,
    pub admin_key: Option<Hidden>,
    pub role: Role,
    pub pull_interval_secs: Option<u64>,
    /// 32 bytes (hex or base64) that seal brands' IYS passwords at rest.
    pub secret_key: Option<Hidden>,
    /// More IYS base URLs brands may use.
    pub iys_allowed_urls: Vec<String>,
    pub metrics_bind: MetricsBind,
    /// Requests per second one API key may make (0: no limit).
    pub rate_limit: u32,
    pub iys_bulk_poll_min_secs: Option<u64>,
    /// How long API keys, brands and categories are cached (0: not at all).
    pub cache_ttl_ms: u64,
    /// NATS with JetStream (`nats://127.0.0.1:4222`): change events are published there too.
    pub nats_url: Option<String>,
    /// Consents the in-memory send-state mirrors may hold in all, on SQLite (0: none; lists
    /// then read the table).
    pub mirror_max_consents: usize,
}

/// The keys of [`Config`], which are also the only `IYSHUB_*` variables read as settings
/// (others, like `IYSHUB_LOG_FORMAT` or test seeds, are not settings and are left alone).
const KEYS: [&str; 20] = [
    "database_url",
    "data_dir",
    "bind",
    "iys_url",
    "iys_username",
    "iys_password",
    "iys_code",
    "sim_bind",
    "sim_profile",
    "admin_key",
    "role",
    "pull_interval_secs",
    "secret_key",
    "iys_allowed_urls",
    "metrics_bind",
    "rate_limit",
    "iys_bulk_poll_min_secs",
    "cache_ttl_ms",
    "nats_url",
    "mirror_max_consents",
];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 1] = ["iys_allowed_urls"];

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            data_dir: PathBuf::from("iyshub-data"),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            iys_url: None,
            iys_username: None,
            iys_password: None,
            iys_code: 600_123,
            sim_bind: SocketAddr::from(([127, 0, 0, 1], 8090)),
            sim_profile: iys_sim::Profile::Fast,
            admin_key: None,
            role: Role::All,
            pull_interval_secs: None,
            secret_key: None,
            iys_allowed_urls: Vec::new(),
            metrics_bind: MetricsBind::At(SocketAddr::from(([127, 0, 0, 1], 9464))),
            rate_limit: hub::DEFAULT_RATE_LIMIT,
            iys_bulk_poll_min_secs: None,
            cache_ttl_ms: 2_000,
            nats_url: None,
            mirror_max_consents: hub_store::DEFAULT_MIRROR_BUDGET,
        }
    }
}

/// What an instance runs: the API, the IYS engines, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    All,
    Api,
    Worker,
}

impl Role {
    pub fn api(self) -> bool {
        self != Role::Worker
    }
    pub fn engines(self) -> bool {
        self != Role::Api
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// Where `/metrics` is served without a key: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsBind {
    Off,
    At(SocketAddr),
}

impl<'de> Deserialize<'de> for MetricsBind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "off" => Ok(MetricsBind::Off),
            other => other.parse().map(MetricsBind::At).map_err(|_| {
                serde::de::Error::custom(format!("{other:?} is not an address or `off`"))
            }),
        }
    }
}

/// A secret setting: usable, but never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Hidden(String);

impl Hidden {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hidden(…)")
    }
}

/// A setting that could not be read; the message names the setting and its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the config file {path} cannot be read")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid TOML")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{}", messages(.0))]
    Setting(Box<figment::Error>),
}

/// Each error as "what for which setting in which source", e.g. "invalid socket address syntax
/// for IYSHUB_BIND in the environment".
fn messages(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| {
            let key = match (&e.metadata, &e.profile) {
                (Some(m), Some(p)) if !e.path.is_empty() => m.interpolate(p, &e.path),
                _ => e.path.join("."),
            };
            let source = e.metadata.as_ref().map_or("the flags", |m| &*m.name);
            if key.is_empty() {
                format!("{} in {source}", e.kind)
            } else {
                format!("{} for {key} in {source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// The settings from the file `file` (or the default file), the environment and `flags`
    /// (a struct of optional values, `None` for flags not given).
    pub fn load(file: Option<&Path>, flags: &impl Serialize) -> Result<Config, ConfigError> {
        Config::load_from(file, std::env::vars(), flags)
    }

    /// [`Config::load`] with the environment given, for tests.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &impl Serialize,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let named = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, v)| k == "IYSHUB_CONFIG" && !v.is_empty())
                .map(|(_, v)| PathBuf::from(v))
        });
        let path = match named {
            Some(p) => Some(p),
            None if Path::new(DEFAULT_FILE).exists() => Some(PathBuf::from(DEFAULT_FILE)),
            None => None,
        };
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(TomlFile::read(path)?);
        }
        figment
            .merge(Environment(env))
            .merge(figment::providers::Serialized::defaults(flags))
            .extract_lossy()
            .map_err(|e| ConfigError::Setting(Box::new(e)))
    }

    /// Whether the embedded SQLite database is used.
    pub fn embedded(&self) -> bool {
        self.database_url.is_none()
    }
}

/// The config file, parsed up front so a syntax error names the file and line.
struct TomlFile {
    path: PathBuf,
    table: toml::Table,
}

impl TomlFile {
    fn read(path: PathBuf) -> Result<TomlFile, ConfigError> {
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let table = toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.clone(),
            source: Box::new(source),
        })?;
        Ok(TomlFile { path, table })
    }
}

impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("the config file {}", self.path.display()))
            .interpolater(|_, keys| keys.join("."))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = Value::serialize(&self.table)?
            .into_dict()
            .ok_or_else(|| figment::Error::from("the config file is not a table".to_owned()))?;
        Ok(Profile::Default.collect(dict))
    }
}

/// `IYSHUB_<KEY>` variables for the keys of [`Config`], as text; empty means unset.
struct Environment(Vec<(String, String)>);

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment")
            .interpolater(|_, keys| format!("IYSHUB_{}", keys.join("_").to_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in &self.0 {
            let Some(key) = name
                .strip_prefix("IYSHUB_")
                .map(str::to_lowercase)
                .filter(|k| KEYS.contains(&k.as_str()))
            else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            let value = if LIST_KEYS.contains(&key.as_str()) {
                Value::from(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::from(s.to_owned()))
                        .collect::<Vec<_>>(),
                )
            } else {
                Value::from(value.clone())
            };
            dict.insert(key, value);
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        bind: Option<SocketAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rate_limit: Option<u32>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load_from(None, env(&[]), &Flags::default()).unwrap();
        assert_eq!(c.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(c.role, Role::All);
        assert!(c.embedded());
        assert_eq!(c.rate_limit, hub::DEFAULT_RATE_LIMIT);
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let f = file("rate_limit = 5\nbind = \"127.0.0.1:1\"\nrole = \"api\"\n");
        let e = env(&[("IYSHUB_RATE_LIMIT", "6"), ("IYSHUB_BIND", "127.0.0.1:2")]);
        let flags = Flags {
            bind: Some(SocketAddr::from(([127, 0, 0, 1], 3))),
            rate_limit: None,
        };
        let c = Config::load_from(Some(f.path()), e, &flags).unwrap();
        assert_eq!(c.bind.port(), 3);
        assert_eq!(c.rate_limit, 6);
        assert_eq!(c.role, Role::Api);
    }

    #[test]
    fn environment_text_is_kept_as_text() {
        let e = env(&[
            ("IYSHUB_ADMIN_KEY", "0077"),
            (
                "IYSHUB_IYS_ALLOWED_URLS",
                "https://a.example, https://b.example",
            ),
            ("IYSHUB_METRICS_BIND", "off"),
            ("IYSHUB_LOG_FORMAT", "json"),
            ("IYSHUB_DATABASE_URL", ""),
        ]);
        let c = Config::load_from(None, e, &Flags::default()).unwrap();
        assert_eq!(c.admin_key.as_ref().map(Hidden::expose), Some("0077"));
        assert_eq!(
            c.iys_allowed_urls,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(c.metrics_bind, MetricsBind::Off);
        assert!(c.embedded(), "an empty variable is unset");
        assert!(!format!("{c:?}").contains("0077"), "secrets are not shown");
    }

    #[test]
    fn errors_name_the_setting_and_its_source() {
        let e = env(&[("IYSHUB_RATE_LIMIT", "many")]);
        let err = Config::load_from(None, e, &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("IYSHUB_RATE_LIMIT"), "{err}");
        assert!(err.contains("many"), "{err}");

        let f = file("bindd = \"127.0.0.1:1\"\n");
        let err = Config::load_from(Some(f.path()), env(&[]), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bindd"), "{err}");
        assert!(err.contains("config file"), "{err}");

        let f = file("role = \"boss\"\n");
        let err = Config::load_from(Some(f.path()), env(&[]), &Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("role") && err.contains("boss"), "{err}");

        let err = Config::load_from(
            Some(Path::new("/nonexistent/iyshub.toml")),
            env(&[]),
            &Flags::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/iyshub.toml"), "{err}");
    }

    #[test]
    fn the_file_can_be_named_by_the_environment() {
        let f = file("iys_url = \"https://api.sandbox.iys.org.tr\"\n");
        let e = env(&[("IYSHUB_CONFIG", &f.path().display().to_string())]);
        let c = Config::load_from(None, e, &Flags::default()).unwrap();
        assert_eq!(c.iys_url.as_deref(), Some("https://api.sandbox.iys.org.tr"));
    }
}
