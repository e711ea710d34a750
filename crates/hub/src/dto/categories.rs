//! Message categories (marketing or transactional).

use hub_core::{BrandCode, CategoryKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::dto::schema;
use crate::extract::RequestBody;

/// A category to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoryInput {
    /// 1–64 of a-z, 0-9, _ and -.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", examples("kampanya"))]
    pub code: String,
    /// 1–200 bytes, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(value_type = schema::CategoryKind)]
    pub kind: CategoryKind,
    /// Ignored (the path's brand), so a category read can be sent back as it is.
    #[serde(default)]
    #[schema(value_type = Option<schema::BrandCodeValue>)]
    pub brand_code: Option<Value>,
}

impl RequestBody for CategoryInput {}

/// A category's new name and kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoryReplace {
    /// Defaults to the path's code, and must equal it.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub code: Option<String>,
    /// 1–200 bytes, not blank.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(value_type = schema::CategoryKind)]
    pub kind: CategoryKind,
    /// Ignored (the path's brand).
    #[serde(default)]
    #[schema(value_type = Option<schema::BrandCodeValue>)]
    pub brand_code: Option<Value>,
}

impl RequestBody for CategoryReplace {}

/// A message category of a brand.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(examples(json!({"brandCode": 600123, "code": "kampanya", "name": "Kampanya ve indirimler", "kind": "marketing"})))]
pub struct Category {
    #[schema(value_type = schema::BrandCodeValue)]
    pub brand_code: Option<BrandCode>,
    pub code: String,
    pub name: String,
    #[schema(value_type = schema::CategoryKind)]
    pub kind: CategoryKind,
}

impl From<hub_store::Category> for Category {
    fn from(c: hub_store::Category) -> Self {
        Category {
            brand_code: c.brand_code,
            code: c.code,
            name: c.name,
            kind: c.kind,
        }
    }
}

/// A brand's categories.
#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub categories: Vec<Category>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_category_answers_as_the_store_writes_it() {
        let c = hub_store::Category {
            brand_code: Some(BrandCode(600123)),
            code: "kampanya".into(),
            name: "Kampanya".into(),
            kind: CategoryKind::Marketing,
        };
        crate::dto::same_json(&Category::from(c.clone()), &c);
    }
}
