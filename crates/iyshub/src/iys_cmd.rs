//! `iyshub iys …`: operator commands against a configured IYS or the simulator.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use iys::rules::{RuleContext, validate_consent};
use iys::wire::{ChangeSource, ConsentQuery};
use iys::{ConsentDate, ConsentStatus, ConsentType, HsSource, RecipientType};
use iys_client::{ClientConfig, IysClient};

use crate::config::Config;
use crate::flags::IysFlags;

/// Where IYS is and who we are there: the same settings as `iyshub serve` (the built-in
/// simulator's address and demo user when no IYS URL is set).
#[derive(Debug, Args, serde::Serialize)]
pub struct Connection {
    /// A TOML file of settings (snake_case keys); ./iyshub.toml when present.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    iys: IysFlags,
    /// The service provider's IYS number (default 600123).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    iys_code: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ConsentKey {
    /// Brand code (the master brand's code equals the iysCode).
    #[arg(long)]
    brand: u64,
    /// Phone or e-mail; normalised first (0532 123 45 67 → +905321234567).
    #[arg(long)]
    recipient: String,
    #[arg(long = "type", value_name = "TYPE")]
    consent_type: ConsentType,
    #[arg(long, default_value = "BIREYSEL")]
    recipient_type: RecipientType,
}

#[derive(Debug, Subcommand)]
pub enum IysCommand {
    /// Get a token and show its expiry (never the token itself), or why there is none.
    Token {
        #[command(flatten)]
        conn: Connection,
    },
    /// Add or update one consent (v2, validated locally with IYS's rules first).
    Add {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        key: ConsentKey,
        #[arg(long)]
        status: ConsentStatus,
        #[arg(long, default_value = "HS_WEB")]
        source: HsSource,
        /// Istanbul wall clock "YYYY-MM-DD HH:MM:SS"; now when omitted.
        #[arg(long)]
        consent_date: Option<ConsentDate>,
    },
    /// Show the consent's current state in IYS.
    Status {
        #[command(flatten)]
        conn: Connection,
        #[command(flatten)]
        key: ConsentKey,
    },
    /// Read the changes feed (one JSON line per movement, then the cursor to resume from).
    Changes {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        brand: u64,
        /// IYS (citizens' movements) or HS (the provider's own).
        #[arg(long, default_value = "IYS", value_parser = parse_source)]
        source: ChangeSource,
        /// Cursor returned by an earlier read.
        #[arg(long)]
        after: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Register a push URL with IYS (IYS then POSTs citizens' movements to it with Basic auth);
    /// point it at the hub's `/api/v1/iys/push/{brandCode}`.
    PushRegister {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        brand: u64,
        /// https://your-host/api/v1/iys/push/{brandCode}
        #[arg(long)]
        url: String,
        /// One registration per channel: MESAJ, ARAMA or EPOSTA.
        #[arg(long = "type", value_name = "TYPE")]
        consent_type: ConsentType,
        #[arg(long)]
        push_username: String,
        #[arg(long, env = "IYSHUB_PUSH_PASSWORD", hide_env_values = true)]
        push_password: String,
    },
    /// List the push URLs registered with IYS for a brand.
    PushList {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        brand: u64,
    },
    /// Show the per-item result of a bulk request.
    BulkResult {
        #[command(flatten)]
        conn: Connection,
        #[arg(long)]
        brand: u64,
        #[arg(long)]
        request_id: String,
    },
}

fn parse_source(s: &str) -> Result<ChangeSource, String> {
    match s {
        "IYS" => Ok(ChangeSource::Iys),
        "HS" => Ok(ChangeSource::Hs),
        other => Err(format!("{other:?}: expected IYS or HS")),
    }
}

/// The client, and who it is for messages.
fn connect(conn: &Connection) -> anyhow::Result<(IysClient, String)> {
    let config = Config::load(conn.config.as_deref(), conn)?;
    let (url, username, password) = crate::setup::iys_account(&config)?;
    let username = username.context("IYSHUB_IYS_USERNAME is required with IYSHUB_IYS_URL")?;
    let who = format!("{username} at {url}");
    let client = IysClient::new(ClientConfig::new(url, username, password, config.iys_code))?;
    Ok((client, who))
}

fn client(conn: &Connection) -> anyhow::Result<IysClient> {
    Ok(connect(conn)?.0)
}

fn query(key: &ConsentKey) -> anyhow::Result<ConsentQuery> {
    let recipient = iys::Recipient::normalise_for(&key.recipient, key.consent_type)
        .with_context(|| format!("recipient {:?}", key.recipient))?;
    Ok(ConsentQuery {
        recipient: recipient.as_str().to_owned(),
        recipient_type: key.recipient_type,
        consent_type: key.consent_type,
    })
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(cmd: IysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        IysCommand::Token { conn } => {
            let (client, who) = connect(&conn)?;
            let state = client.check_token().await?;
            println!("token OK for {who}");
            println!("  access token expires  {}", fmt_ts(state.access_expires));
            println!("  refresh token expires {}", fmt_ts(state.refresh_expires));
        }
        IysCommand::Add {
            conn,
            key,
            status,
            source,
            consent_date,
        } => {
            let q = query(&key)?;
            let date =
                consent_date.unwrap_or_else(|| ConsentDate::from_timestamp(jiff::Timestamp::now()));
            let body = serde_json::json!({
                "recipient": q.recipient, "type": q.consent_type, "recipientType": q.recipient_type,
                "status": status, "source": source, "consentDate": date,
            });
            let valid = match validate_consent(&body, &RuleContext::at(jiff::Timestamp::now())) {
                Ok(v) => v,
                Err(errors) => {
                    eprintln!("refused locally, as IYS would:");
                    print_json(&iys::IysErrors { errors })?;
                    return Ok(ExitCode::from(1));
                }
            };
            let answer = client(&conn)?
                .add_consent(key.brand, &valid.to_wire())
                .await?;
            print_json(&answer)?;
        }
        IysCommand::Status { conn, key } => {
            match client(&conn)?.status(key.brand, &query(&key)?).await? {
                Some(s) => print_json(&s)?,
                None => {
                    eprintln!("IYS has no consent for this recipient, type and recipientType");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        IysCommand::Changes {
            conn,
            brand,
            source,
            after,
            limit,
        } => {
            let client = client(&conn)?;
            let mut cursor = after.clone();
            let stream = client.changes(brand, source, after, limit);
            futures_util::pin_mut!(stream);
            while let Some(page) = stream.next().await {
                let page = page?;
                for m in &page.list {
                    println!("{}", serde_json::to_string(m)?);
                }
                cursor = Some(page.after);
            }
            match cursor {
                Some(c) => eprintln!("resume with --after {c}"),
                None => eprintln!("nothing new"),
            }
        }
        IysCommand::PushRegister {
            conn,
            brand,
            url,
            consent_type,
            push_username,
            push_password,
        } => {
            let connection = iys::wire::PushConnection {
                url,
                consent_type,
                username: push_username,
                password: push_password,
            };
            print_json(
                &client(&conn)?
                    .push_register(brand, vec![connection])
                    .await?,
            )?;
        }
        IysCommand::PushList { conn, brand } => {
            print_json(&client(&conn)?.push_list(brand).await?)?;
        }
        IysCommand::BulkResult {
            conn,
            brand,
            request_id,
        } => {
            let items = client(&conn)?.bulk_result(brand, &request_id).await?;
            if items.is_empty() {
                eprintln!(
                    "not processed yet (IYS answers [] until it starts; poll no sooner than 300 s)"
                );
            }
            print_json(&items)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_ts(ts: Option<jiff::Timestamp>) -> String {
    ts.map_or_else(
        || "-".into(),
        |t| ConsentDate::from_timestamp(t).to_string() + " (Istanbul)",
    )
}
