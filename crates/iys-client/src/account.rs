//! The provider's brands and subscription, and IYS's city and town lists.

use reqwest::Method;

use iys::wire::{Brand, City, Subscription, Town};

use crate::transport::Call;
use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn brands(&self) -> Result<Vec<Brand>, ClientError> {
        self.json(Call::new(
            "brands",
            Method::GET,
            format!("/sps/{}/brands", self.inner.config.iys_code),
        ))
        .await
    }

    pub async fn subscription(&self) -> Result<Subscription, ClientError> {
        self.json(Call::new(
            "subscription",
            Method::GET,
            format!("/sps/{}/subscription", self.inner.config.iys_code),
        ))
        .await
    }

    pub async fn cities(&self) -> Result<Vec<City>, ClientError> {
        self.json(Call::new("info", Method::GET, "/info/city".into()))
            .await
    }

    pub async fn towns(&self) -> Result<Vec<Town>, ClientError> {
        self.json(Call::new("info", Method::GET, "/info/town".into()))
            .await
    }
}
