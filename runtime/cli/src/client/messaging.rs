//! Client calls for partners and queues.

use super::{ApiError, CALL_TIMEOUT, Client, check};
use cloudware_api::wire;
use reqwest::Method;

impl Client {
    /// `POST /v1/partners`.
    pub async fn create_partner(
        &self,
        tenant: Option<&str>,
        request: &wire::CreatePartner,
    ) -> Result<wire::PartnerInfo, ApiError> {
        self.call_json(
            Method::POST,
            &["partners"],
            tenant,
            Some(request),
            CALL_TIMEOUT,
        )
        .await
    }

    /// `GET /v1/partners`.
    pub async fn list_partners(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<wire::PartnerInfo>, ApiError> {
        self.get(&["partners"], tenant).await
    }

    /// `DELETE /v1/partners/{app_id}`.
    pub async fn remove_partner(&self, tenant: Option<&str>, app_id: &str) -> Result<(), ApiError> {
        let (_, request) = self.request(Method::DELETE, &["partners", app_id], tenant);
        let response = self.send(request, CALL_TIMEOUT).await?;
        check(response).await.map(drop)
    }

    /// `GET /v1/partners/platform-key`.
    pub async fn platform_key(&self) -> Result<wire::PlatformKey, ApiError> {
        self.get(&["partners", "platform-key"], None).await
    }

    /// `GET /v1/queues`.
    pub async fn list_queues(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<wire::QueueInfo>, ApiError> {
        self.get(&["queues"], tenant).await
    }

    /// `GET /v1/queues/{queue}/dead-letters`.
    pub async fn dead_letters(
        &self,
        tenant: Option<&str>,
        queue: &str,
    ) -> Result<Vec<wire::DeadLetterInfo>, ApiError> {
        self.get(&["queues", queue, "dead-letters"], tenant).await
    }

    /// `POST /v1/queues/{queue}/replay`.
    pub async fn replay(
        &self,
        tenant: Option<&str>,
        queue: &str,
        request: &wire::Replay,
    ) -> Result<wire::Replayed, ApiError> {
        self.call_json(
            Method::POST,
            &["queues", queue, "replay"],
            tenant,
            Some(request),
            CALL_TIMEOUT,
        )
        .await
    }
}
