//! The puller: reads IYS's changes feed from the stored cursor and applies the movements through
//! the ledger (quarantining what cannot be applied), advancing the cursor in the same transaction.
//!
//! The feed is read on a task of its own, a few pages ahead of the ledger, and the pages that
//! are waiting when the ledger is free are applied in one transaction (at most
//! `PAGES_PER_APPLY`), with the last page's cursor. A pull's transaction ids fall anywhere in
//! their index, so past a few thousand events each page applied alone rewrote nearly a page of
//! that index per movement; several pages a commit share those writes, and reading overlaps
//! with writing. What is applied, and in which order, is the same as page by page. The reading
//! task also screens each page (decodes its movements, sets aside what cannot be applied), so
//! that work runs beside the ledger's statements rather than between them.

use std::sync::Arc;

use hub_core::{BrandCode, Change, Mode, Origin};
use hub_store::Brand;
use iys::wire::ChangeSource;
use iys_client::{ClientError, Clock, IysClient};
use tokio::sync::mpsc;

use crate::{EngineDb, Engines};

/// The feed's page size (IYS's largest).
const PAGE: u32 = 1000;
/// Pages applied in one transaction at most.
const PAGES_PER_APPLY: usize = 5;
/// Pages read ahead of the ledger at most.
const READ_AHEAD: usize = 2 * PAGES_PER_APPLY;

/// A page of the feed, screened: the movements the ledger can take, and those set aside for a
/// person with the reason.
struct Screened {
    /// The cursor after the page's last movement.
    after: String,
    changes: Vec<Change>,
    set_aside: Vec<(serde_json::Value, String)>,
}

/// What the reading task hands over, in the feed's order.
enum Feed {
    Page(Screened),
    /// The feed had nothing after the cursor.
    Caught,
    Failed(ClientError),
}

/// Stops the reading task when the pull ends, however it ends.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads and screens pages from `cursor` until a page is not full, the feed has nothing more,
/// a read fails or the puller is gone.
async fn read_feed(
    client: IysClient,
    brand: BrandCode,
    source: ChangeSource,
    mut cursor: Option<String>,
    clock: Arc<dyn Clock>,
    pages: mpsc::Sender<Feed>,
) {
    loop {
        let item = match client
            .changes_page_raw(brand.0, source, cursor.as_deref(), PAGE)
            .await
        {
            Ok(None) => Feed::Caught,
            Ok(Some(page)) => {
                let full = page.list.len() >= PAGE as usize;
                cursor = Some(page.after.clone());
                let (changes, set_aside) =
                    hub_core::screen_movements(brand, page.list, Origin::IysPull, clock.now());
                let page = Screened {
                    after: page.after,
                    changes,
                    set_aside,
                };
                if full {
                    Feed::Page(page)
                } else {
                    // The last page: nothing to read after it for now.
                    let _ = pages.send(Feed::Page(page)).await;
                    return;
                }
            }
            Err(e) => Feed::Failed(e),
        };
        let last = !matches!(item, Feed::Page(_));
        if pages.send(item).await.is_err() || last {
            return;
        }
    }
}

impl<S: EngineDb> Engines<S> {
    /// Reads the changes feed. Returns how many movements were new.
    pub async fn pull(
        &self,
        brand: &Brand,
        client: &IysClient,
    ) -> Result<usize, hub_store::StoreError> {
        let mut sources = vec![ChangeSource::Iys];
        if brand.mode == Mode::Sync {
            // Other systems of the brand may write to IYS; IYS is the master.
            sources.push(ChangeSource::Hs);
        }
        let mut new = 0;
        for source in sources {
            new += self.pull_source(brand, client, source).await?;
        }
        Ok(new)
    }

    async fn pull_source(
        &self,
        brand: &Brand,
        client: &IysClient,
        source: ChangeSource,
    ) -> Result<usize, hub_store::StoreError> {
        let cursor = self.store.cursor(brand.brand_code, source.as_str()).await?;
        let (sender, mut pages) = mpsc::channel(READ_AHEAD);
        let _reader = Reader(tokio::spawn(read_feed(
            client.clone(),
            brand.brand_code,
            source,
            cursor,
            self.config.clock.clone(),
            sender,
        )));
        let mut new = 0;
        while let Some(first) = pages.recv().await {
            // The pages waiting now, in order, up to the end of the feed or a failed read.
            let mut batch: Vec<Screened> = Vec::new();
            let mut ended = None;
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Feed::Page(page) => batch.push(page),
                    other => {
                        ended = Some(other);
                        break;
                    }
                }
                if batch.len() < PAGES_PER_APPLY {
                    next = pages.try_recv().ok();
                }
            }
            new += self.apply_pages(brand, source, batch).await?;
            match ended {
                Some(Feed::Caught) => {
                    self.store
                        .touch_cursor(brand.brand_code, source.as_str())
                        .await?;
                    break;
                }
                Some(Feed::Failed(e)) => {
                    tracing::warn!(brand = %brand.brand_code, error = %e, "pulling IYS's changes failed; will retry");
                    break;
                }
                Some(Feed::Page(_)) | None => {}
            }
        }
        Ok(new)
    }

    /// Quarantines what `pages` set aside and applies the rest in one transaction with the last
    /// page's cursor. Returns how many movements were new.
    async fn apply_pages(
        &self,
        brand: &Brand,
        source: ChangeSource,
        pages: Vec<Screened>,
    ) -> Result<usize, hub_store::StoreError> {
        let Some(after) = pages.last().map(|p| p.after.clone()) else {
            return Ok(0);
        };
        let mut changes: Vec<Change> = Vec::new();
        let mut quarantined = Vec::new();
        for page in pages {
            changes.extend(page.changes);
            quarantined.extend(page.set_aside);
        }
        if !quarantined.is_empty() {
            tracing::warn!(brand = %brand.brand_code, count = quarantined.len(), "movements from IYS set aside for a person (quarantine)");
            self.store
                .quarantine(brand.brand_code, source.as_str(), &quarantined, self.now())
                .await?;
        }
        let applied = self
            .store
            .apply_pull(brand, changes, source.as_str(), &after)
            .await?;
        Ok(applied.iter().filter(|a| a.event_id.is_some()).count())
    }
}
