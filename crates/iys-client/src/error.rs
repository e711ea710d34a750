//! What can go wrong talking to IYS, typed so callers can tell "fix the data" from "try later".

use jiff::Timestamp;

use iys::{ErrorClass, IysError, OAuthError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// IYS refused the request; every error item it returned is here.
    #[error("IYS answered {status}: {}", summary(errors))]
    Iys { status: u16, errors: Vec<IysError> },
    /// The token endpoint refused the credentials or the grant.
    #[error("IYS token endpoint answered {status}: {error}")]
    OAuth { status: u16, error: OAuthError },
    /// IYS limited token requests (H084): no token call before `until`, or the hour restarts.
    #[error("IYS token requests are halted until {until} (H084)")]
    TokenHalted { until: Timestamp },
    /// Transient failures persisted through every attempt.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<ClientError>,
    },
    /// The request may have reached IYS but no answer came back, and it is not safe to resend.
    #[error("no answer from IYS for a request that must not be sent twice: {0}")]
    Ambiguous(String),
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("IYS answered {status} with a body we cannot read: {message}")]
    Decode { status: u16, message: String },
    /// The input would be refused by IYS as a whole (e.g. H194 duplicates in one bulk list).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The bulk request still had unprocessed items after the polling schedule.
    #[error("bulk request {request_id} not finished after {polls} polls")]
    BulkNotFinished { request_id: String, polls: u32 },
    /// The daily movement file does not match the hash IYS published for it.
    #[error("daily file of {date}: SHA-384 {actual} does not match IYS's {expected}")]
    HashMismatch {
        date: String,
        expected: String,
        actual: String,
    },
    #[error("token store: {0}")]
    Store(String),
}

fn summary(errors: &[IysError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ClientError {
    /// IYS's H-codes in this error, first to last.
    pub fn codes(&self) -> Vec<&str> {
        match self {
            ClientError::Iys { errors, .. } => errors.iter().map(|e| e.code.as_str()).collect(),
            ClientError::RetriesExhausted { last, .. } => last.codes(),
            ClientError::TokenHalted { .. } => vec!["H084"],
            _ => Vec::new(),
        }
    }

    /// Whether IYS refused the request for the per-second limit (429 with H124, H083 or no code;
    /// the hourly budgets' H084, H086 and H089 are not about pace).
    pub fn is_over_pace(&self) -> bool {
        use iys::HCode;
        match self {
            ClientError::Iys {
                status: 429,
                errors,
            } => !errors
                .iter()
                .any(|e| matches!(e.hcode(), Some(HCode::H084 | HCode::H086 | HCode::H089))),
            _ => false,
        }
    }

    /// Whether trying again later could succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Iys { status, errors } => {
                *status == 429
                    || *status >= 500
                    || errors.iter().any(|e| {
                        e.hcode()
                            .is_some_and(|c| c.class() == ErrorClass::Retryable)
                    })
            }
            ClientError::Transport(e) => {
                e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()
            }
            ClientError::TokenHalted { .. }
            | ClientError::RetriesExhausted { .. }
            | ClientError::Ambiguous(_)
            | ClientError::BulkNotFinished { .. } => true,
            _ => false,
        }
    }
}
