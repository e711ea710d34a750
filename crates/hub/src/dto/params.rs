//! Path and header parameters, for the document (the handlers read them with
//! [`crate::extract::Path`] and from the headers).

use utoipa::IntoParams;

/// `{brandCode}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("brandCode"))]
pub struct BrandCodePath(
    /// The brand's IYS number. Not a positive integer: 400 invalid_value.
    #[param(minimum = 1, example = 600123)]
    pub u64,
);

/// `{recipient}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("recipient"))]
pub struct RecipientPath(
    /// A phone in any common form (normalised to E.164; `+` may be sent as is or as %2B), an
    /// e-mail (lower-cased), a device id, or `profile:{externalId}` for a profile's category
    /// consents.
    #[param(example = "+905321234567")]
    pub String,
);

/// `{code}` of a category.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("code"))]
pub struct CategoryCodePath(
    /// The category's code.
    #[param(example = "kampanya")]
    pub String,
);

/// `{externalId}` of a profile.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("externalId"))]
pub struct ExternalIdPath(
    /// The brand's user id: 1–256 characters without spaces.
    #[param(min_length = 1, max_length = 256, example = "musteri-48213")]
    pub String,
);

/// `{id}` of an API key.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path, names("id"))]
pub struct KeyIdPath(
    /// The key's id.
    #[param(format = "uuid")]
    pub String,
);
