//! Console users as the binary creates them: the first admin at first start, and
//! `iyshub admin create` / `iyshub admin password`.

use hub::HubDb;
use hub_core::BrandCode;
use hub_store::{ConsoleRole, ConsoleUser, NewConsoleUser};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username {0:?} must be 1–64 letters, digits or . _ @ -")]
    Username(String),
    #[error("the password must be at least {MIN_PASSWORD} characters (and at most 256)")]
    Password,
    #[error("could not hash the password: {0}")]
    Hash(String),
    #[error("no randomness for a password: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] hub_store::StoreError),
}

fn check_username(u: &str) -> Result<(), UserError> {
    let ok = !u.is_empty()
        && u.chars().count() <= 64
        && u.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Username(u.to_owned()))
    }
}

fn hash(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD || password.len() > 256 {
        return Err(UserError::Password);
    }
    hub_secrets::hash_password(password).map_err(|e| UserError::Hash(e.to_string()))
}

/// A random password of 20 letters and digits (about 119 bits).
pub fn generate_password() -> Result<String, UserError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| UserError::Random(e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| {
            let i = usize::from(*b) % ALPHABET.len();
            char::from(ALPHABET.get(i).copied().unwrap_or(b'x'))
        })
        .collect())
}

/// Creates a user from the command line; see [`create_by`].
pub async fn create<S: HubDb>(
    store: &S,
    username: &str,
    password: Option<&str>,
    global_admin: bool,
    grants: Vec<(BrandCode, ConsoleRole)>,
) -> Result<(ConsoleUser, Option<String>), UserError> {
    create_by(store, "cli", username, password, global_admin, grants).await
}

/// Creates a user, recorded in the audit log as done by `actor`; with no password given, one is
/// generated and returned to show once.
pub async fn create_by<S: HubDb>(
    store: &S,
    actor: &str,
    username: &str,
    password: Option<&str>,
    global_admin: bool,
    grants: Vec<(BrandCode, ConsoleRole)>,
) -> Result<(ConsoleUser, Option<String>), UserError> {
    check_username(username)?;
    let generated = match password {
        Some(_) => None,
        None => Some(generate_password()?),
    };
    let password_hash = hash(password.or(generated.as_deref()).unwrap_or_default())?;
    let user = store
        .create_console_user(NewConsoleUser {
            username: username.to_owned(),
            password_hash,
            global_admin,
            grants,
        })
        .await?;
    store
        .audit(
            None,
            actor,
            "console_user_created",
            serde_json::json!({"username": user.username, "globalAdmin": user.global_admin,
                "grants": user.grants.iter().map(|(b, r)| serde_json::json!({"brandCode": b.0, "role": r.as_str()})).collect::<Vec<_>>()}),
        )
        .await?;
    Ok((user, generated))
}

/// A new password from the command line; see [`reset_password_by`].
pub async fn reset_password<S: HubDb>(
    store: &S,
    username: &str,
    password: Option<&str>,
) -> Result<Option<Option<String>>, UserError> {
    reset_password_by(store, "cli", username, password).await
}

/// Sets a new password (generated when none is given, and returned to show once), recorded as
/// done by `actor`; the user's sessions end and a lockout is lifted. `None` when there is no
/// such user.
pub async fn reset_password_by<S: HubDb>(
    store: &S,
    actor: &str,
    username: &str,
    password: Option<&str>,
) -> Result<Option<Option<String>>, UserError> {
    let generated = match password {
        Some(_) => None,
        None => Some(generate_password()?),
    };
    let h = hash(password.or(generated.as_deref()).unwrap_or_default())?;
    if !store.set_console_password(username, &h).await? {
        return Ok(None);
    }
    store
        .audit(
            None,
            actor,
            "console_password_reset",
            serde_json::json!({"username": username}),
        )
        .await?;
    Ok(Some(generated))
}

/// At first start (no console user yet): an `admin` global admin with a generated password,
/// returned to print once.
pub async fn bootstrap_admin<S: HubDb>(store: &S) -> Result<Option<String>, UserError> {
    if store.console_user_count().await? > 0 {
        return Ok(None);
    }
    let (_, password) = create(store, "admin", None, true, Vec::new()).await?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.chars().count(), 20);
        assert!(a.len() >= MIN_PASSWORD);
        assert_ne!(a, b);
    }

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("ayse.yilmaz@marka").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username(&"x".repeat(65)).is_err());
    }
}
