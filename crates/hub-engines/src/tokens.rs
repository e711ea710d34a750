//! The IYS token kept in the database, so every instance shares one token and an H084 halt
//! survives restarts.

use std::sync::Arc;

use hub_store::{EngineStore, SqlStore};
use iys_client::{StoreFuture, TokenState, TokenStore};

#[derive(Debug)]
pub struct DbTokenStore<S = SqlStore> {
    store: Arc<S>,
    key: String,
}

impl<S> DbTokenStore<S> {
    pub fn new(store: Arc<S>, key: String) -> Self {
        DbTokenStore { store, key }
    }
}

impl<S: EngineStore + std::fmt::Debug + 'static> TokenStore for DbTokenStore<S> {
    fn load(&self) -> StoreFuture<'_, TokenState> {
        Box::pin(async move {
            match self
                .store
                .load_token(&self.key)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(s) => serde_json::from_str(&s).map_err(|e| e.to_string()),
                None => Ok(TokenState::default()),
            }
        })
    }

    fn save(&self, state: TokenState) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let s = serde_json::to_string(&state).map_err(|e| e.to_string())?;
            self.store
                .save_token(&self.key, &s)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
