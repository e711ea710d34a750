//! Simulator configuration: a profile (`realistic` or `fast`) gives the defaults; a TOML file
//! may override any field.

use serde::{Deserialize, Serialize};

use iys::calendar::EveRule;
use iys::wire::SubscriptionStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// IYS's real limits and timings: bulk results after minutes, the last hour hidden from the
    /// changes feed, rate limits on.
    #[default]
    Realistic,
    /// For development and tests: bulk results in ~100 ms, no hidden hour, no rate limits.
    Fast,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "realistic" => Ok(Profile::Realistic),
            "fast" => Ok(Profile::Fast),
            other => Err(format!(
                "unknown profile {other:?} (expected realistic or fast)"
            )),
        }
    }
}

/// IYS's usage limits, per client IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub enabled: bool,
    /// All endpoints together (H124).
    pub requests_per_second: u32,
    /// `/oauth2/token` (H084); calling again while limited restarts the hour.
    pub token_per_hour: u32,
    /// Single status queries (H086).
    pub status_per_hour: u32,
    /// History queries (H089).
    pub history_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            enabled: true,
            requests_per_second: 10,
            token_per_hour: 100,
            status_per_hour: 1000,
            history_per_hour: 100,
        }
    }
}

/// How long IYS takes, and what its changes feed shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    /// Time from a bulk submission until IYS starts processing it (`[]` until then).
    pub bulk_delay_ms: u64,
    /// Processing time per bulk item once started (items not yet done show `enqueue`).
    pub bulk_item_ms: u64,
    /// IYS asks clients not to poll bulk results sooner than this; earlier polls are counted.
    pub bulk_min_poll_age_ms: u64,
    /// Hide the most recent hour from the changes feed, as IYS does.
    pub hide_last_hour: bool,
    /// How far back the changes feed reaches.
    pub changes_window_days: u32,
    pub access_token_ttl_s: u64,
    pub refresh_token_ttl_s: u64,
    /// The order of the items in a bulk result. IYS's examples list them as submitted, but its
    /// document does not promise it: clients must match items by `subRequestId` or `index`.
    pub bulk_result_order: BulkResultOrder,
}

/// How a bulk result orders its items; each keeps its own `index` and `subRequestId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkResultOrder {
    /// As submitted, as in IYS's examples.
    #[default]
    Submitted,
    /// Last item first.
    Reversed,
    /// A fresh random order on every poll.
    Shuffled,
}

impl BulkResultOrder {
    /// Puts `items` (in submission order) into this order.
    pub fn arrange<T>(self, items: &mut [T]) {
        match self {
            BulkResultOrder::Submitted => {}
            BulkResultOrder::Reversed => items.reverse(),
            BulkResultOrder::Shuffled => fastrand::shuffle(items),
        }
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            bulk_delay_ms: 120_000,
            bulk_item_ms: 20,
            bulk_min_poll_age_ms: 300_000,
            hide_last_hour: true,
            changes_window_days: 7,
            access_token_ttl_s: 7200,
            refresh_token_ttl_s: 14_400,
            bulk_result_order: BulkResultOrder::Submitted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandConfig {
    pub brand_code: u64,
    pub name: String,
    pub master: bool,
}

/// An API user of the service provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserConfig {
    pub username: String,
    pub password: String,
    /// Brands the user may act for; empty means every brand of the provider.
    #[serde(default)]
    pub brands: Vec<u64>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("username", &self.username)
            .field("password", &"***")
            .field("brands", &self.brands)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriptionConfig {
    pub status: SubscriptionStatus,
    pub package_name: String,
    /// Maximum recipient addresses (H525 when reached); none means unlimited.
    pub consent_limit: Option<u64>,
    /// Whether the limit may be exceeded.
    pub consent_limit_exceed: bool,
    pub has_api_right: bool,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        SubscriptionConfig {
            status: SubscriptionStatus::Active,
            package_name: "İleti+".into(),
            consent_limit: None,
            consent_limit_exceed: false,
            has_api_right: true,
        }
    }
}

/// A partner (iş ortağı, integrator) authorised for the provider's brands, with its own API
/// users and subscription (`/integrator/{integratorCode}/…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegratorConfig {
    /// The partner's IYS number.
    pub integrator_code: u64,
    pub package_name: String,
    pub status: SubscriptionStatus,
    /// The partner's API users; they may act for `brands` of the provider.
    pub users: Vec<UserConfig>,
    /// Brands of the provider the partner is authorised for; empty means all of them.
    pub brands: Vec<u64>,
}

impl Default for IntegratorConfig {
    fn default() -> Self {
        IntegratorConfig {
            integrator_code: 700_001,
            package_name: "IO - API Kullanım Lisansı".into(),
            status: SubscriptionStatus::Active,
            users: vec![UserConfig {
                username: "partner".into(),
                password: "partner-password".into(),
                brands: Vec::new(),
            }],
            brands: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub profile: Profile,
    pub limits: Limits,
    pub timing: Timing,
    /// The service provider's IYS number (= its master brand's code).
    pub iys_code: u64,
    pub provider_title: String,
    pub brands: Vec<BrandConfig>,
    pub users: Vec<UserConfig>,
    pub subscription: SubscriptionConfig,
    pub integrator: IntegratorConfig,
    /// Allow `http://` push URLs (IYS requires https); for local use.
    pub allow_insecure_push: bool,
    /// How a half-day eve (bayram eves, 28 October) counts towards H467's 3 business days:
    /// `business_day` (default), `half_day` or `day_off`. IYS does not say (docs/iys-rules.md).
    pub deadline_eves: EveRule,
    /// Seed of the fault-injection dice, for repeatable runs.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::for_profile(Profile::Realistic)
    }
}

impl SimConfig {
    pub fn for_profile(profile: Profile) -> SimConfig {
        let (limits, timing) = match profile {
            Profile::Realistic => (Limits::default(), Timing::default()),
            Profile::Fast => (
                Limits {
                    enabled: false,
                    ..Limits::default()
                },
                Timing {
                    bulk_delay_ms: 100,
                    bulk_item_ms: 0,
                    bulk_min_poll_age_ms: 100,
                    hide_last_hour: false,
                    ..Timing::default()
                },
            ),
        };
        SimConfig {
            profile,
            limits,
            timing,
            iys_code: 600_123,
            provider_title: "ÖRNEK A.Ş.".into(),
            brands: vec![
                BrandConfig {
                    brand_code: 600_123,
                    name: "Örnek Marka".into(),
                    master: true,
                },
                BrandConfig {
                    brand_code: 600_124,
                    name: "Örnek Alt Marka".into(),
                    master: false,
                },
            ],
            users: vec![UserConfig {
                username: "demo".into(),
                password: "demo-password".into(),
                brands: Vec::new(),
            }],
            subscription: SubscriptionConfig::default(),
            integrator: IntegratorConfig::default(),
            allow_insecure_push: profile == Profile::Fast,
            deadline_eves: EveRule::BusinessDay,
            seed: None,
        }
    }

    /// The profile's defaults with a TOML document laid over them. `profile` (from the command
    /// line) wins over the file's own `profile` key.
    pub fn from_toml(text: &str, profile: Option<Profile>) -> Result<SimConfig, ConfigError> {
        let file: toml::Table = text.parse().map_err(|e| ConfigError(format!("{e}")))?;
        let profile = match (profile, file.get("profile")) {
            (Some(p), _) => p,
            (None, Some(v)) => v
                .as_str()
                .ok_or_else(|| ConfigError("profile must be a string".into()))?
                .parse()
                .map_err(ConfigError)?,
            (None, None) => Profile::default(),
        };
        let defaults = toml::Table::try_from(SimConfig::for_profile(profile))
            .map_err(|e| ConfigError(format!("{e}")))?;
        let mut merged = defaults;
        merge(&mut merged, file);
        merged.insert(
            "profile".into(),
            toml::Value::String(format!("{profile:?}").to_lowercase()),
        );
        merged
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(format!("{e}")))
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("simulator configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_overrides_the_profile_defaults() {
        let cfg = SimConfig::from_toml(
            "profile = \"fast\"\n[limits]\nenabled = true\ntoken_per_hour = 3\n",
            None,
        )
        .unwrap();
        assert_eq!(cfg.profile, Profile::Fast);
        assert!(cfg.limits.enabled);
        assert_eq!(cfg.limits.token_per_hour, 3);
        assert_eq!(cfg.limits.requests_per_second, 10);
        assert_eq!(cfg.timing.bulk_delay_ms, 100);
        let cfg = SimConfig::from_toml("profile = \"fast\"", Some(Profile::Realistic)).unwrap();
        assert_eq!(cfg.timing.bulk_delay_ms, 120_000);
        assert_eq!(cfg.deadline_eves, EveRule::BusinessDay);
        let cfg = SimConfig::from_toml("deadline_eves = \"half_day\"", None).unwrap();
        assert_eq!(cfg.deadline_eves, EveRule::HalfDay);
        assert!(SimConfig::from_toml("deadline_eves = \"half\"", None).is_err());
        assert!(SimConfig::from_toml("[limits]\nenabled = 3", None).is_err());
        assert_eq!(cfg.timing.bulk_result_order, BulkResultOrder::Submitted);
        let cfg = SimConfig::from_toml("[timing]\nbulk_result_order = \"shuffled\"", None).unwrap();
        assert_eq!(cfg.timing.bulk_result_order, BulkResultOrder::Shuffled);
        assert!(SimConfig::from_toml("[timing]\nbulk_result_order = \"random\"", None).is_err());
    }
}
