//! Push registration.

use reqwest::Method;

use iys::wire::{MessageResponse, PushConnection, PushRegistration, PushRegistrationItem};

use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn push_register(
        &self,
        brand: u64,
        connections: Vec<PushConnection>,
    ) -> Result<MessageResponse, ClientError> {
        let call = self
            .brand_call("push_register", Method::POST, brand, "/push/registration")
            .json(&PushRegistration {
                connection: connections,
            })?;
        self.json(call).await
    }

    pub async fn push_list(&self, brand: u64) -> Result<Vec<PushRegistrationItem>, ClientError> {
        self.json(self.brand_call("push_list", Method::GET, brand, "/push/registration"))
            .await
    }

    pub async fn push_unregister(
        &self,
        brand: u64,
        connection: &PushConnection,
    ) -> Result<MessageResponse, ClientError> {
        let call = self
            .brand_call(
                "push_unregister",
                Method::POST,
                brand,
                "/push/unregistration",
            )
            .json(connection)?;
        self.json(call).await
    }
}
