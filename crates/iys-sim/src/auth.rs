//! IYS's OAuth2 tokens: 2-hour access tokens, 4-hour refresh tokens that rotate on every use.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;

use iys::wire::TokenResponse;

#[derive(Debug, Clone)]
struct Session {
    username: String,
    expires: Timestamp,
}

#[derive(Debug, Default)]
pub struct Auth {
    access: HashMap<String, Session>,
    refresh: HashMap<String, Session>,
}

impl Auth {
    pub fn issue(
        &mut self,
        username: &str,
        now: Timestamp,
        access_ttl: i64,
        refresh_ttl: i64,
    ) -> TokenResponse {
        let access = jwt_like(username, now, access_ttl, "RS256");
        let refresh = jwt_like(username, now, refresh_ttl, "HS256");
        let at = |ttl: i64| Timestamp::from_second(now.as_second() + ttl).unwrap_or(now);
        self.access.insert(
            access.clone(),
            Session {
                username: username.to_owned(),
                expires: at(access_ttl),
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Session {
                username: username.to_owned(),
                expires: at(refresh_ttl),
            },
        );
        TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: access_ttl as u64,
            refresh_expires_in: refresh_ttl as u64,
            token_type: "bearer".into(),
        }
    }

    /// The user of a valid access token.
    pub fn check(&mut self, token: &str, now: Timestamp) -> Option<String> {
        let s = self.access.get(token)?;
        if s.expires <= now {
            self.access.remove(token);
            return None;
        }
        Some(s.username.clone())
    }

    /// Uses up a refresh token (they rotate) and returns its user if it was valid.
    pub fn take_refresh(&mut self, token: &str, now: Timestamp) -> Option<String> {
        let s = self.refresh.remove(token)?;
        (s.expires > now).then_some(s.username)
    }

    /// Forced expiry from the control API.
    pub fn expire(&mut self, refresh_too: bool) {
        self.access.clear();
        if refresh_too {
            self.refresh.clear();
        }
    }

    pub fn active_access_tokens(&self, now: Timestamp) -> usize {
        self.access.values().filter(|s| s.expires > now).count()
    }
}

/// A JWT-shaped opaque token (clients must not parse it, but real IYS tokens look like this).
fn jwt_like(username: &str, now: Timestamp, ttl: i64, alg: &str) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let payload = serde_json::json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now.as_second(),
        "exp": now.as_second() + ttl,
        "iss": "iys-sim/auth/realms/integrator",
        "typ": "Bearer",
        "preferred_username": username,
    });
    let sig: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_refresh_tokens_rotate() {
        let mut auth = Auth::default();
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let tok = auth.issue("demo", t0, 7200, 14_400);
        assert_eq!(auth.check(&tok.access_token, t0).as_deref(), Some("demo"));
        let later = Timestamp::from_second(t0.as_second() + 7200).unwrap();
        assert_eq!(auth.check(&tok.access_token, later), None);
        assert_eq!(
            auth.take_refresh(&tok.refresh_token, later).as_deref(),
            Some("demo")
        );
        assert_eq!(
            auth.take_refresh(&tok.refresh_token, later),
            None,
            "used up"
        );
    }
}
