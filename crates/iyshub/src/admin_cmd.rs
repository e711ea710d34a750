//! `iyshub admin`: console users from the command line (the first admin, more admins, brand
//! users, password resets).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use hub_core::BrandCode;
use hub_store::ConsoleRole;
use hub_store::prelude::*;

use crate::flags::DbFlags;
use crate::setup;

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a console user. The password is generated and printed once, unless
    /// `--password-stdin` reads it from standard input.
    Create {
        #[command(flatten)]
        db: DbFlags,
        #[arg(long)]
        username: String,
        /// Every brand with every role, plus the instance's audit log.
        #[arg(long)]
        global_admin: bool,
        /// A brand and the role on it, as CODE:ROLE (read, write or admin); repeatable.
        #[arg(long = "brand", value_name = "CODE:ROLE", value_parser = grant)]
        brands: Vec<(BrandCode, ConsoleRole)>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Give a console user a new password (generated and printed once, unless
    /// `--password-stdin`); their sessions end and a lockout is lifted.
    Password {
        #[command(flatten)]
        db: DbFlags,
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the console users with their roles.
    List {
        #[command(flatten)]
        db: DbFlags,
    },
}

fn grant(text: &str) -> Result<(BrandCode, ConsoleRole), String> {
    let (code, role) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected CODE:ROLE, e.g. 600123:write"))?;
    let code = code
        .parse::<u64>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| format!("{code:?} is not a brand code"))?;
    Ok((BrandCode(code), role.parse()?))
}

fn stdin_password(wanted: bool) -> anyhow::Result<Option<String>> {
    if !wanted {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::Create {
            db,
            username,
            global_admin,
            brands,
            password_stdin,
        } => {
            if !global_admin && brands.is_empty() {
                anyhow::bail!("give --global-admin or at least one --brand CODE:ROLE");
            }
            let password = stdin_password(password_stdin)?;
            let (store, _) = setup::open(&db.config()?).await?;
            let made = hub_console::users::create(
                &store,
                &username,
                password.as_deref(),
                global_admin,
                brands,
            )
            .await;
            store.close().await;
            let (user, generated) = made?;
            println!("created console user {}", user.username);
            if let Some(p) = generated {
                println!("password  {p}\n          (shown once)");
            }
            Ok(ExitCode::SUCCESS)
        }
        AdminCommand::Password {
            db,
            username,
            password_stdin,
        } => {
            let password = stdin_password(password_stdin)?;
            let (store, _) = setup::open(&db.config()?).await?;
            let done =
                hub_console::users::reset_password(&store, &username, password.as_deref()).await;
            store.close().await;
            match done? {
                None => {
                    eprintln!("no console user {username:?}");
                    Ok(ExitCode::from(1))
                }
                Some(generated) => {
                    println!("password of {username} changed; their sessions ended");
                    if let Some(p) = generated {
                        println!("password  {p}\n          (shown once)");
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        AdminCommand::List { db } => {
            let (store, _) = setup::open(&db.config()?).await?;
            let users = store.console_users().await;
            store.close().await;
            for u in users? {
                let roles = if u.global_admin {
                    "global admin".to_owned()
                } else {
                    u.grants
                        .iter()
                        .map(|(b, r)| format!("{b}:{}", r.as_str()))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                println!("{}\t{roles}", u.username);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
