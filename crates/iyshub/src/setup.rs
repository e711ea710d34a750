//! What the commands build from the [`Config`]: the database, the secret key that seals brands'
//! IYS passwords, and the IYS connection of the engines.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hub_core::BrandCode;
use hub_store::{SqlStore, Store};

use crate::config::Config;
use crate::flags::{DbFlags, EngineFlags};

/// The simulator's demo API user, used when no IYS URL is configured.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "demo-password";

/// The database URL and a description of it without its password.
pub fn database(config: &Config) -> anyhow::Result<(String, String)> {
    if let Some(url) = &config.database_url {
        let url = url.expose().to_owned();
        let shown = match url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.clone(),
        };
        return Ok((url, shown));
    }
    let path = config.data_dir.join("iyshub.db");
    let url = SqlStore::sqlite_url(&path)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    Ok((url, format!("SQLite {}", path.display())))
}

/// The store, migrated, and its description.
pub async fn open(config: &Config) -> anyhow::Result<(SqlStore, String)> {
    let (url, shown) = database(config)?;
    let store = SqlStore::connect(&url)
        .await
        .with_context(|| format!("opening the database ({shown})"))?;
    store.set_mirror_budget(config.mirror_max_consents);
    Ok((store, shown))
}

/// Where the embedded default keeps the secret key it made.
fn saved_key_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("secret.key")
}

fn read_key(path: &Path) -> anyhow::Result<hub_secrets::SecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    hub_secrets::SecretKey::parse(&text)
        .with_context(|| format!("{} does not hold a secret key", path.display()))
}

/// The secret key that seals brands' IYS passwords, and a line for the banner. Given, it is
/// used; with SQLite and none given, it is read from (or made once into) `secret.key` in the data
/// directory; with PostgreSQL and none given, passwords cannot be stored.
pub fn secret_key_or_new(
    config: &Config,
) -> anyhow::Result<(Option<hub_secrets::SecretKey>, String)> {
    if let Some(text) = &config.secret_key {
        let key = hub_secrets::SecretKey::parse(text.expose()).context("IYSHUB_SECRET_KEY")?;
        return Ok((
            Some(key),
            "IYS passwords sealed with IYSHUB_SECRET_KEY".into(),
        ));
    }
    if !config.embedded() {
        return Ok((
            None,
            "no IYSHUB_SECRET_KEY: brands use the instance's IYS password only".into(),
        ));
    }
    let path = saved_key_path(config);
    if path.exists() {
        return Ok((
            Some(read_key(&path)?),
            format!("IYS passwords sealed with the key in {}", path.display()),
        ));
    }
    let key = hub_secrets::SecretKey::generate()?;
    write_private(&path, &key.to_hex())
        .with_context(|| format!("saving the new secret key to {}", path.display()))?;
    Ok((
        Some(key),
        format!(
            "new secret key saved in {} (keep a copy: it opens stored IYS passwords; set IYSHUB_SECRET_KEY in production)",
            path.display()
        ),
    ))
}

/// The secret key for a one-off command: given, or the embedded default's saved one; never made.
fn secret_key(config: &Config) -> anyhow::Result<Option<hub_secrets::SecretKey>> {
    if let Some(text) = &config.secret_key {
        return Ok(Some(
            hub_secrets::SecretKey::parse(text.expose()).context("IYSHUB_SECRET_KEY")?,
        ));
    }
    let path = saved_key_path(config);
    if config.embedded() && path.exists() {
        return Ok(Some(read_key(&path)?));
    }
    Ok(None)
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The IYS the engines reach: base URL, the instance's user (brands may have their own) and
/// password. With no IYS URL it is the simulator at `sim_bind` and its demo user; a real IYS
/// needs its password set.
pub fn iys_account(
    config: &Config,
) -> anyhow::Result<(String, Option<String>, iys_client::Secret)> {
    let password = config.iys_password.as_ref().map(|p| p.expose());
    match &config.iys_url {
        None => Ok((
            format!("http://{}", config.sim_bind),
            Some(
                config
                    .iys_username
                    .clone()
                    .unwrap_or_else(|| DEMO_USER.into()),
            ),
            iys_client::Secret::new(password.unwrap_or(DEMO_PASSWORD)),
        )),
        Some(url) => {
            let password = password.context(
                "IYSHUB_IYS_PASSWORD is required with IYSHUB_IYS_URL (the IYS API user's password)",
            )?;
            Ok((
                url.clone(),
                config.iys_username.clone(),
                iys_client::Secret::new(password),
            ))
        }
    }
}

/// Brands' IYS connections: IYS's hosts, `base` (the instance's IYS) and the configured extra
/// URLs allowed; the secret key; the instance's connection as the default.
pub fn iys_policy(
    config: &Config,
    base: Option<String>,
    username: Option<String>,
    secret_key: Option<hub_secrets::SecretKey>,
) -> hub_store::IysPolicy {
    let mut allowed = hub_store::IysPolicy::default().allowed_urls;
    allowed.extend(base.iter().cloned());
    allowed.extend(config.iys_allowed_urls.iter().cloned());
    allowed.retain(|u| !u.trim().is_empty());
    hub_store::IysPolicy {
        allowed_urls: allowed,
        secret_key,
        default_connection: base.zip(username),
    }
}

/// The store, the brand and engines for a one-off run (`backfill`, `reconcile`): the same IYS,
/// allowed hosts and secret key as `iyshub serve` with the same settings.
pub async fn one_off(
    flags: &EngineFlags,
    brand: u64,
) -> anyhow::Result<(Arc<SqlStore>, hub_store::Brand, hub_engines::Engines)> {
    let config = flags.config()?;
    let store = Arc::new(open(&config).await?.0);
    let prepared = async {
        let b = store
            .brand(BrandCode(brand))
            .await?
            .with_context(|| format!("no brand {brand}"))?;
        let (base, username, password) = iys_account(&config)?;
        let engine_config = hub_engines::EngineConfig {
            iys_password: password,
            iys: iys_policy(&config, Some(base), username, secret_key(&config)?),
            ..Default::default()
        };
        anyhow::Ok((b, engine_config))
    }
    .await;
    match prepared {
        Ok((b, engine_config)) => {
            let engines = hub_engines::Engines::new(store.clone(), engine_config);
            Ok((store, b, engines))
        }
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

pub async fn migrate(db: DbFlags) -> anyhow::Result<ExitCode> {
    let (store, shown) = open(&db.config()?).await?;
    store.close().await;
    println!("database schema is up to date ({shown})");
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(db: DbFlags, brand: u64) -> anyhow::Result<ExitCode> {
    let (store, _) = open(&db.config()?).await?;
    let report = store.verify_chain(BrandCode(brand)).await;
    store.close().await;
    let report = report?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn backfill(flags: EngineFlags, brand: u64, max_single: u64) -> anyhow::Result<ExitCode> {
    let (store, b, engines) = one_off(&flags, brand).await?;
    let result = engines
        .backfill(&b, max_single, |r| {
            eprint!(
                "\rchecked {} (ONAY in IYS {}), single {}, released {}   ",
                r.checked, r.onay_in_iys, r.single_checked, r.released
            )
        })
        .await;
    store.close().await;
    let report = result?;
    eprintln!();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.complete {
        println!(
            "more held recipients remain: run again after an hour (IYS's single-status budget)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
