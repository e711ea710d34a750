//! The changes feed (what the hub pulls): pages, raw pages and a stream of pages.

use futures_util::Stream;
use reqwest::Method;
use serde::de::DeserializeOwned;

use iys::wire::{ChangeSource, ChangesResponse};

use crate::transport::Call;
use crate::{ClientError, IysClient};

/// A page of the changes feed whose movements are not decoded yet.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct RawChangesPage {
    /// The cursor after the page's last movement.
    pub after: String,
    pub list: Vec<serde_json::Value>,
}

impl IysClient {
    fn changes_call<'a>(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Call<'a> {
        let mut call = self.brand_call("changes", Method::GET, brand, "/consents/changes");
        call.query = vec![
            ("source", source.as_str().into()),
            ("limit", limit.to_string()),
        ];
        if let Some(a) = after {
            call.query.push(("after", a.to_owned()));
        }
        call
    }

    /// One page of the changes feed; `None` when IYS has nothing (204).
    pub async fn changes_page(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<ChangesResponse>, ClientError> {
        self.changes_page_as(brand, source, after, limit).await
    }

    /// One page of the changes feed with its items undecoded, so one unreadable movement does
    /// not hold up the rest (the caller decodes each and sets aside what it cannot read);
    /// `None` when IYS has nothing (204).
    pub async fn changes_page_raw(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<RawChangesPage>, ClientError> {
        self.changes_page_as(brand, source, after, limit).await
    }

    async fn changes_page_as<T: DeserializeOwned>(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<T>, ClientError> {
        self.json_if_any(self.changes_call(brand, source, after, limit))
            .await
    }

    /// The changes feed from `after` as a stream of pages, each with the cursor to store, until
    /// IYS answers 204 or a short page.
    pub fn changes(
        &self,
        brand: u64,
        source: ChangeSource,
        after: Option<String>,
        limit: u32,
    ) -> impl Stream<Item = Result<ChangesResponse, ClientError>> + '_ {
        futures_util::stream::unfold(Some(after), move |cursor| async move {
            let cursor = cursor?;
            match self
                .changes_page(brand, source, cursor.as_deref(), limit)
                .await
            {
                Ok(None) => None,
                Ok(Some(page)) => {
                    let next = (page.list.len() as u32 >= limit).then(|| Some(page.after.clone()));
                    Some((Ok(page), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
