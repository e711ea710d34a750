//! The puller: reads IYS's changes feed from the stored cursor and applies the movements through
//! the ledger (quarantining what cannot be applied), advancing the cursor in the same transaction.

use hub_core::{Mode, Origin};
use hub_store::{Brand, EngineStore};
use iys::wire::ChangeSource;
use iys_client::IysClient;

use crate::Engines;

impl Engines {
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
            let mut cursor = self.store.cursor(brand.brand_code, source.as_str()).await?;
            loop {
                match client
                    .changes_page_raw(brand.brand_code.0, source, cursor.as_deref(), 1000)
                    .await
                {
                    Ok(None) => {
                        self.store
                            .touch_cursor(brand.brand_code, source.as_str())
                            .await?;
                        break;
                    }
                    Ok(Some(page)) => {
                        let full = page.list.len() >= 1000;
                        let (changes, quarantined) = hub_core::screen_movements(
                            brand.brand_code,
                            page.list,
                            Origin::IysPull,
                            self.now(),
                        );
                        if !quarantined.is_empty() {
                            tracing::warn!(brand = %brand.brand_code, count = quarantined.len(), "movements from IYS set aside for a person (quarantine)");
                            self.store
                                .quarantine(
                                    brand.brand_code,
                                    source.as_str(),
                                    &quarantined,
                                    self.now(),
                                )
                                .await?;
                        }
                        let applied = self
                            .store
                            .apply_pull(brand, changes, source.as_str(), &page.after)
                            .await?;
                        new += applied.iter().filter(|a| a.event_id.is_some()).count();
                        cursor = Some(page.after);
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(brand = %brand.brand_code, error = %e, "pulling IYS's changes failed; will retry");
                        break;
                    }
                }
            }
        }
        Ok(new)
    }
}
