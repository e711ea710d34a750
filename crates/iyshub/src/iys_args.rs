//! How the one-off commands that run the IYS engines (`iyshub backfill`, `iyshub reconcile`)
//! reach IYS: the same settings, allowed hosts and secret key as `iyshub serve`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct IysArgs {
    /// IYS, as `iyshub serve` reaches it; the built-in simulator at IYSHUB_SIM_BIND when absent.
    #[arg(long, env = "IYSHUB_IYS_URL")]
    iys_url: Option<String>,
    #[arg(long, env = "IYSHUB_IYS_USERNAME", default_value = "demo")]
    iys_username: String,
    #[arg(long, env = "IYSHUB_SIM_BIND", default_value = "127.0.0.1:8090")]
    sim_bind: SocketAddr,
    #[arg(
        long,
        env = "IYSHUB_IYS_PASSWORD",
        hide_env_values = true,
        default_value = "demo-password"
    )]
    iys_password: String,
    /// More IYS base URLs brands may use, comma-separated (as for `iyshub serve`).
    #[arg(long, env = "IYSHUB_IYS_ALLOWED_URLS", value_delimiter = ',')]
    iys_allowed_urls: Vec<String>,
    /// The key that opens brands' stored IYS passwords (with the embedded default it is in the
    /// data directory's `secret.key`). Without it brands use the instance's password.
    #[arg(long, env = "IYSHUB_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

impl IysArgs {
    /// The engines' settings for a one-off run: the instance's connection as the default, IYS's
    /// hosts, the simulator and the configured extra URLs allowed, and the secret key (given, or
    /// the embedded default's `secret.key` in `data_dir`).
    pub fn engine_config(&self, data_dir: &Path) -> anyhow::Result<hub_engines::EngineConfig> {
        let iys_url = self
            .iys_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.sim_bind));
        let mut allowed = hub_store::IysPolicy::default().allowed_urls;
        allowed.push(iys_url.clone());
        allowed.extend(self.iys_allowed_urls.iter().cloned());
        allowed.retain(|u| !u.trim().is_empty());
        let saved = data_dir.join("secret.key");
        let key_text = match &self.secret_key {
            Some(k) => Some(k.clone()),
            None if saved.exists() => Some(
                std::fs::read_to_string(&saved)
                    .with_context(|| format!("reading {}", saved.display()))?,
            ),
            None => None,
        };
        let secret_key = key_text
            .as_deref()
            .map(hub_secrets::SecretKey::parse)
            .transpose()
            .context("IYSHUB_SECRET_KEY")?;
        Ok(hub_engines::EngineConfig {
            iys_password: iys_client::Secret::new(self.iys_password.clone()),
            iys: hub_store::IysPolicy {
                allowed_urls: allowed,
                secret_key,
                default_connection: Some((iys_url, self.iys_username.clone())),
            },
            ..Default::default()
        })
    }
}
