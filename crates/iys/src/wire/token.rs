//! Token: `POST /oauth2/token` (JSON or form).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::OAuthError;

/// A token request, tagged by `grant_type`. Serialises the same way as JSON or as a form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "grant_type", rename_all = "snake_case")]
pub enum TokenRequest {
    Password { username: String, password: String },
    RefreshToken { refresh_token: String },
}

impl fmt::Debug for TokenRequest {
    /// Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenRequest::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            TokenRequest::RefreshToken { .. } => f
                .debug_struct("RefreshToken")
                .field("refresh_token", &"***")
                .finish(),
        }
    }
}

/// The loose fields of a token request as they arrive, before IYS's checks.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenRequestFields {
    pub grant_type: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
}

impl TokenRequestFields {
    /// IYS's checks, with its own OAuth error descriptions.
    pub fn parse(self) -> Result<TokenRequest, OAuthError> {
        let grant = self
            .grant_type
            .ok_or_else(|| OAuthError::invalid_request("Giriş yöntemi belirtilmemiş."))?;
        match grant.as_str() {
            "" => Err(OAuthError::invalid_grant("Giriş yöntemi boş olamaz.")),
            "password" => Ok(TokenRequest::Password {
                username: required(
                    self.username,
                    "Kullanıcı adı verilmemiş.",
                    "Kullanıcı adı boş bırakılamaz.",
                )?,
                password: required(self.password, "Şifre verilmemiş.", "Şifre boş bırakılamaz.")?,
            }),
            "refresh_token" => Ok(TokenRequest::RefreshToken {
                refresh_token: required(
                    self.refresh_token,
                    "Yenileme jetonu verilmemiş.",
                    "Yenileme jetonu boş olamaz.",
                )?,
            }),
            "client_credentials" | "authorization_code" | "implicit" => {
                Err(OAuthError::invalid_grant("Desteklenmeyen giriş yöntemi."))
            }
            _ => Err(OAuthError::invalid_request("Bilinmeyen giriş yöntemi.")),
        }
    }
}

/// A required field of a token request: IYS answers `invalid_request` when it is absent and
/// `invalid_grant` when it is empty.
fn required(value: Option<String>, absent: &str, empty: &str) -> Result<String, OAuthError> {
    match value {
        None => Err(OAuthError::invalid_request(absent)),
        Some(v) if v.is_empty() => Err(OAuthError::invalid_grant(empty)),
        Some(v) => Ok(v),
    }
}

/// IYS's answer for a wrong username or password.
pub const INVALID_CREDENTIALS: &str = "Kullanıcı kimlik bilgileri geçersiz.";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds; 7200 at IYS.
    pub expires_in: u64,
    /// Seconds; 14400 at IYS.
    pub refresh_expires_in: u64,
    pub token_type: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}
