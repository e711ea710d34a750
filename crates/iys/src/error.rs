//! IYS's two error shapes: business errors `{"errors":[…]}` and OAuth errors `{error, error_description}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hcode::HCode;

/// One step of an error's `location` path: a field name or an index (`["recipients", 3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocationPart {
    Index(u64),
    Field(String),
}

/// The `location` of an error item: the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Location(pub Vec<LocationPart>);

impl Location {
    pub fn field(name: &str) -> Self {
        Location(vec![LocationPart::Field(name.to_owned())])
    }

    pub fn indexed(name: &str, index: usize) -> Self {
        Location(vec![
            LocationPart::Field(name.to_owned()),
            LocationPart::Index(index as u64),
        ])
    }

    /// The first field name of the path, if any.
    pub fn first_field(&self) -> Option<&str> {
        self.0.iter().find_map(|p| match p {
            LocationPart::Field(f) => Some(f.as_str()),
            LocationPart::Index(_) => None,
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            match part {
                LocationPart::Field(name) if i == 0 => write!(f, "{name}")?,
                LocationPart::Field(name) => write!(f, ".{name}")?,
                LocationPart::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One item of IYS's `errors` array.
///
/// `code` stays a string: IYS has more codes than our catalogue (ViA, OTP), and a client must
/// still report them. [`IysError::hcode`] gives the catalogued code when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IysError {
    /// Several IYS examples spell the key `"code:"`; accept it.
    #[serde(alias = "code:")]
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Position of the item in a bulk list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl IysError {
    /// An error with IYS's own Turkish message for `code`.
    pub fn new(code: HCode) -> Self {
        IysError {
            code: code.as_str().to_owned(),
            message: code.message_tr().to_owned(),
            location: None,
            value: None,
            index: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn at(mut self, field: &str) -> Self {
        self.location = Some(Location::field(field));
        self
    }

    pub fn at_location(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    pub fn with_value(mut self, value: impl Into<Value>) -> Self {
        self.value = Some(value.into());
        self
    }

    pub fn with_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// The catalogued H-code, if this code is one we know.
    pub fn hcode(&self) -> Option<HCode> {
        self.code.parse().ok()
    }

    /// The HTTP status IYS answers with for this code (400 for codes we do not know).
    pub fn http_status(&self) -> u16 {
        self.hcode().map_or(400, HCode::http_status)
    }
}

impl fmt::Display for IysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(loc) = &self.location {
            write!(f, " (at {loc}")?;
            if let Some(v) = &self.value {
                write!(f, ", value {v}")?;
            }
            f.write_str(")")?;
        }
        if let Some(i) = self.index {
            write!(f, " [item {i}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for IysError {}

/// IYS's standard error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IysErrors {
    pub errors: Vec<IysError>,
}

impl IysErrors {
    pub fn one(error: IysError) -> Self {
        IysErrors {
            errors: vec![error],
        }
    }

    /// The HTTP status of the answer: that of the first error, as IYS answers with one status.
    pub fn http_status(&self) -> u16 {
        self.errors.first().map_or(400, IysError::http_status)
    }
}

impl From<IysError> for IysErrors {
    fn from(e: IysError) -> Self {
        IysErrors::one(e)
    }
}

/// The token endpoint's OAuth-style error: `{"error":"invalid_request","error_description":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    pub error: String,
    pub error_description: String,
}

impl OAuthError {
    pub fn invalid_request(description: &str) -> Self {
        OAuthError {
            error: "invalid_request".into(),
            error_description: description.into(),
        }
    }

    pub fn invalid_grant(description: &str) -> Self {
        OAuthError {
            error: "invalid_grant".into(),
            error_description: description.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_omitted_not_null() {
        let e = IysError::new(HCode::H175);
        let json = serde_json::to_string(&IysErrors::one(e)).unwrap();
        assert!(!json.contains("null"), "{json}");
        assert!(!json.contains("location"), "{json}");
    }

    #[test]
    fn location_paths_mix_fields_and_indexes() {
        let e = IysError::new(HCode::H193)
            .at_location(Location::indexed("recipients", 3))
            .with_value("+905321234567");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["location"], serde_json::json!(["recipients", 3]));
        let back: IysError = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(e.location.unwrap().to_string(), "recipients[3]");
    }

    #[test]
    fn the_code_colon_typo_is_accepted() {
        let e: IysErrors =
            serde_json::from_str(r#"{"errors":[{"code:":"H353","message":"iysCode, …"}]}"#)
                .unwrap();
        assert_eq!(e.errors[0].hcode(), Some(HCode::H353));
        assert_eq!(e.http_status(), 403);
    }
}
