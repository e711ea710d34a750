//! Push registration.

use reqwest::Method;

use iys::wire::{MessageResponse, PushConnection, PushRegistration, PushRegistrationItem};

use crate::transport::Call;
use crate::{ClientError, IysClient};

impl IysClient {
    pub async fn push_register(
        &self,
        brand: u64,
        connections: Vec<PushConnection>,
    ) -> Result<MessageResponse, ClientError> {
        let call = Call::new(
            "push_register",
            Method::POST,
            format!("{}/push/registration", self.sps(brand)),
        )
        .brand(brand)
        .json(&PushRegistration {
            connection: connections,
        })?;
        self.json(call).await
    }

    pub async fn push_list(&self, brand: u64) -> Result<Vec<PushRegistrationItem>, ClientError> {
        self.json(
            Call::new(
                "push_list",
                Method::GET,
                format!("{}/push/registration", self.sps(brand)),
            )
            .brand(brand),
        )
        .await
    }

    pub async fn push_unregister(
        &self,
        brand: u64,
        connection: &PushConnection,
    ) -> Result<MessageResponse, ClientError> {
        let call = Call::new(
            "push_unregister",
            Method::POST,
            format!("{}/push/unregistration", self.sps(brand)),
        )
        .brand(brand)
        .json(connection)?;
        self.json(call).await
    }
}
