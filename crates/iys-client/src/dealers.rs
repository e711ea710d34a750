//! Dealers (retailers) and their access to consents.

use reqwest::Method;

use iys::wire::{
    ConsentQuery, Retailer, RetailerAccessBulk, RetailerAccessGrant, RetailerCreated, RetailerList,
    TransactionReceipt,
};

use crate::transport::Call;
use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn retailer_create(
        &self,
        brand: u64,
        retailer: &Retailer,
    ) -> Result<RetailerCreated, ClientError> {
        let call = Call::new(
            "retailers",
            Method::POST,
            format!("{}/retailers", self.sps(brand)),
        )
        .brand(brand)
        .json(retailer)?;
        self.json(call).await
    }

    pub async fn retailer_list(
        &self,
        brand: u64,
        offset: u64,
        limit: u64,
    ) -> Result<RetailerList, ClientError> {
        let mut call = Call::new(
            "retailers",
            Method::GET,
            format!("{}/retailers", self.sps(brand)),
        )
        .brand(brand);
        call.query = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        self.json(call).await
    }

    pub async fn retailer_get(
        &self,
        brand: u64,
        code: u64,
    ) -> Result<Option<Retailer>, ClientError> {
        let a = self
            .send(
                Call::new(
                    "retailers",
                    Method::GET,
                    format!("{}/retailers/{code}", self.sps(brand)),
                )
                .brand(brand),
            )
            .await?;
        if a.is_empty() || a.body == b"{}" {
            return Ok(None);
        }
        a.json().map(Some)
    }

    pub async fn retailer_delete(&self, brand: u64, code: u64) -> Result<(), ClientError> {
        self.send(
            Call::new(
                "retailers",
                Method::DELETE,
                format!("{}/retailers/{code}", self.sps(brand)),
            )
            .brand(brand),
        )
        .await
        .map(|_| ())
    }

    pub async fn retailer_access_grant(
        &self,
        brand: u64,
        grant: &RetailerAccessGrant,
    ) -> Result<TransactionReceipt, ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::POST,
            format!("{}/consents/retailers/access", self.sps(brand)),
        )
        .brand(brand)
        .json(grant)?;
        self.json(call).await
    }

    pub async fn retailer_access_replace(
        &self,
        brand: u64,
        body: &RetailerAccessBulk,
    ) -> Result<(), ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::PUT,
            format!("{}/consents/retailers/access", self.sps(brand)),
        )
        .brand(brand)
        .json(body)?;
        self.send(call).await.map(|_| ())
    }

    pub async fn retailer_access_list(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<RetailerList, ClientError> {
        let call = Call::new(
            "retailer_access",
            Method::POST,
            format!("{}/consent/retailers/access/list", self.sps(brand)),
        )
        .brand(brand)
        .json(query)?;
        self.json(call).await
    }

    /// Removes the given dealers' access, or every dealer's when `retailerAccess` is absent.
    pub async fn retailer_access_remove(
        &self,
        brand: u64,
        body: &RetailerAccessBulk,
    ) -> Result<(), ClientError> {
        let path = match body.retailer_access {
            Some(_) => format!("{}/consents/retailers/access/remove", self.sps(brand)),
            None => format!("{}/consents/retailers/access/remove/all", self.sps(brand)),
        };
        let call = Call::new("retailer_access", Method::POST, path)
            .brand(brand)
            .json(body)?;
        self.send(call).await.map(|_| ())
    }
}
