//! Dealers (retailers) and their access to consents.

use reqwest::Method;

use iys::wire::{
    ConsentQuery, Retailer, RetailerAccessBulk, RetailerAccessGrant, RetailerCreated, RetailerList,
    TransactionReceipt,
};

use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn retailer_create(
        &self,
        brand: u64,
        retailer: &Retailer,
    ) -> Result<RetailerCreated, ClientError> {
        let call = self
            .brand_call("retailers", Method::POST, brand, "/retailers")
            .json(retailer)?;
        self.json(call).await
    }

    pub async fn retailer_list(
        &self,
        brand: u64,
        offset: u64,
        limit: u64,
    ) -> Result<RetailerList, ClientError> {
        let mut call = self.brand_call("retailers", Method::GET, brand, "/retailers");
        call.query = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        self.json(call).await
    }

    pub async fn retailer_get(
        &self,
        brand: u64,
        code: u64,
    ) -> Result<Option<Retailer>, ClientError> {
        let a = self
            .send(self.brand_call(
                "retailers",
                Method::GET,
                brand,
                format!("/retailers/{code}"),
            ))
            .await?;
        if a.is_absent() {
            return Ok(None);
        }
        a.json().map(Some)
    }

    pub async fn retailer_delete(&self, brand: u64, code: u64) -> Result<(), ClientError> {
        self.send(self.brand_call(
            "retailers",
            Method::DELETE,
            brand,
            format!("/retailers/{code}"),
        ))
        .await
        .map(|_| ())
    }

    pub async fn retailer_access_grant(
        &self,
        brand: u64,
        grant: &RetailerAccessGrant,
    ) -> Result<TransactionReceipt, ClientError> {
        let call = self
            .brand_call(
                "retailer_access",
                Method::POST,
                brand,
                "/consents/retailers/access",
            )
            .json(grant)?;
        self.json(call).await
    }

    pub async fn retailer_access_replace(
        &self,
        brand: u64,
        body: &RetailerAccessBulk,
    ) -> Result<(), ClientError> {
        let call = self
            .brand_call(
                "retailer_access",
                Method::PUT,
                brand,
                "/consents/retailers/access",
            )
            .json(body)?;
        self.send(call).await.map(|_| ())
    }

    pub async fn retailer_access_list(
        &self,
        brand: u64,
        query: &ConsentQuery,
    ) -> Result<RetailerList, ClientError> {
        let call = self
            .brand_call(
                "retailer_access",
                Method::POST,
                brand,
                "/consent/retailers/access/list",
            )
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
            Some(_) => "/consents/retailers/access/remove",
            None => "/consents/retailers/access/remove/all",
        };
        let call = self
            .brand_call("retailer_access", Method::POST, brand, path)
            .json(body)?;
        self.send(call).await.map(|_| ())
    }
}
