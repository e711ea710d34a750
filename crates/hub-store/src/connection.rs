//! Which IYS a brand's engines talk to, as who: the brand's own connection (set by the
//! provider's admin), else the instance's default connection, else none ("not connected").
//! Base URLs are accepted only from the instance's allowed list, so a stored URL can never send
//! the IYS password anywhere else, even if the database was changed behind the hub's back.

use hub_secrets::SecretKey;

use crate::IysConnection;

/// IYS's production and sandbox hosts: always allowed.
pub const IYS_PRODUCTION: &str = "https://api.iys.org.tr";
pub const IYS_SANDBOX: &str = "https://api.sandbox.iys.org.tr";

/// The instance's rules for IYS connections.
#[derive(Debug, Clone)]
pub struct IysPolicy {
    /// Base URLs a connection may use (compared without a trailing `/`).
    pub allowed_urls: Vec<String>,
    /// Seals and opens connection passwords; without it no password can be stored.
    pub secret_key: Option<SecretKey>,
    /// The instance's own connection (`IYSHUB_IYS_URL`/`IYSHUB_IYS_USERNAME`, or the built-in
    /// simulator), used by brands that have none.
    pub default_connection: Option<(String, String)>,
}

impl Default for IysPolicy {
    fn default() -> Self {
        IysPolicy {
            allowed_urls: vec![IYS_PRODUCTION.into(), IYS_SANDBOX.into()],
            secret_key: None,
            default_connection: None,
        }
    }
}

/// A connection the engines may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConnection {
    pub base_url: String,
    pub username: String,
    /// The brand's own password, opened; `None`: the instance's password.
    pub password: Option<String>,
    /// True when the brand has no connection of its own and uses the instance's.
    pub instance_default: bool,
}

impl ResolvedConnection {
    /// The key of this API user's shared token in the store (`iys_token`).
    pub fn token_key(&self) -> String {
        format!("{}|{}", self.base_url, self.username)
    }
}

/// Why a brand's engines cannot reach IYS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotConnected {
    #[error("no IYS connection: the brand has none and the instance has no default")]
    NoConnection,
    #[error("the IYS base URL {0:?} is not on the allowed list")]
    UrlNotAllowed(String),
    #[error("the brand's IYS password cannot be opened: {0}")]
    Password(String),
}

fn trimmed(url: &str) -> &str {
    url.trim().trim_end_matches('/')
}

impl IysPolicy {
    /// Whether `url` is an allowed IYS base URL.
    pub fn allows(&self, url: &str) -> bool {
        let url = trimmed(url);
        !url.is_empty() && self.allowed_urls.iter().any(|a| trimmed(a) == url)
    }

    /// The connection a brand's engines use.
    pub fn resolve(&self, c: &IysConnection) -> Result<ResolvedConnection, NotConnected> {
        let resolved = match (&c.base_url, &c.username) {
            (Some(base), Some(user)) => ResolvedConnection {
                base_url: trimmed(base).to_owned(),
                username: user.clone(),
                password: match &c.password_sealed {
                    None => None,
                    Some(sealed) => {
                        let key = self.secret_key.as_ref().ok_or_else(|| {
                            NotConnected::Password("IYSHUB_SECRET_KEY is not set".into())
                        })?;
                        Some(
                            key.open(sealed)
                                .map_err(|e| NotConnected::Password(e.to_string()))?,
                        )
                    }
                },
                instance_default: false,
            },
            _ => {
                let (base, user) = self
                    .default_connection
                    .clone()
                    .ok_or(NotConnected::NoConnection)?;
                ResolvedConnection {
                    base_url: trimmed(&base).to_owned(),
                    username: user,
                    password: None,
                    instance_default: true,
                }
            }
        };
        if !self.allows(&resolved.base_url) {
            return Err(NotConnected::UrlNotAllowed(resolved.base_url));
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(base: &str, user: &str) -> IysConnection {
        IysConnection {
            base_url: Some(base.into()),
            username: Some(user.into()),
            ..IysConnection::default()
        }
    }

    #[test]
    fn only_allowed_urls_resolve() {
        let p = IysPolicy::default();
        assert!(p.resolve(&conn("https://api.iys.org.tr/", "u")).is_ok());
        assert!(
            p.resolve(&conn("https://api.sandbox.iys.org.tr", "u"))
                .is_ok()
        );
        for bad in [
            "http://127.0.0.1:18699",
            "file:///etc/passwd",
            "gopher://x",
            "http://169.254.169.254",
            "",
            "not a url",
            "https://api.iys.org.tr.evil.example",
        ] {
            assert!(
                matches!(
                    p.resolve(&conn(bad, "u")),
                    Err(NotConnected::UrlNotAllowed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn brands_without_a_connection_use_the_default_or_none() {
        let mut p = IysPolicy::default();
        assert_eq!(
            p.resolve(&IysConnection::default()),
            Err(NotConnected::NoConnection)
        );
        p.default_connection = Some((IYS_SANDBOX.into(), "ops".into()));
        let r = p.resolve(&IysConnection::default()).unwrap();
        assert!(r.instance_default && r.password.is_none());
    }

    #[test]
    fn sealed_passwords_open_only_with_the_key() {
        let key = SecretKey::generate().unwrap();
        let mut c = conn(IYS_SANDBOX, "u");
        c.password_sealed = Some(key.seal("pw").unwrap());
        let mut p = IysPolicy::default();
        assert!(matches!(p.resolve(&c), Err(NotConnected::Password(_))));
        p.secret_key = Some(SecretKey::generate().unwrap());
        assert!(matches!(p.resolve(&c), Err(NotConnected::Password(_))));
        p.secret_key = Some(key);
        assert_eq!(p.resolve(&c).unwrap().password.as_deref(), Some("pw"));
    }
}
