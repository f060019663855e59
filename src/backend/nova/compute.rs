//! What the Nova backend asks of the cloud, as a trait: the HTTP client
//! ([`NovaClient`]) in production, and, in the convergence tests, an
//! adapter over the simulator's in-process cloud ([`novabmc_novasim::local`])
//! that runs the worker on paused tokio time, where backoff, give-up and
//! storms take no real time.
//!
//! Implementations bound every call themselves (the request timeout); the
//! worker bounds them again by its give-up deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::client::{
    ImageFirmware, ImageInfo, Listing, NovaClient, NovaError, ServerAction, ServerInfo,
};
use super::trust::{self, TrustError};

/// The calls the resolver, the poller and the workers make.
pub trait Compute: Send + Sync + 'static {
    /// Authenticates (reports problems early; calls authenticate anyway).
    fn connect(&self) -> impl Future<Output = Result<(), NovaError>> + Send;

    /// Servers with details; with `changes_since`, those changed since then
    /// (deleted ones included); with `name`, those named exactly so.
    fn list_servers(
        &self,
        changes_since: Option<&str>,
        name: Option<&str>,
    ) -> impl Future<Output = Result<Listing, NovaError>> + Send;

    /// One server.
    fn get_server(&self, id: &str) -> impl Future<Output = Result<ServerInfo, NovaError>> + Send;

    /// A server action.
    fn act(
        &self,
        id: &str,
        action: &ServerAction,
    ) -> impl Future<Output = Result<(), NovaError>> + Send;

    /// Sets one metadata key of a server.
    fn set_metadata(
        &self,
        id: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), NovaError>> + Send;

    /// An image by ID or exact name.
    fn find_image(
        &self,
        reference: &str,
    ) -> impl Future<Output = Result<ImageInfo, NovaError>> + Send;

    /// An image's `hw_firmware_type`, if set.
    fn image_firmware(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<ImageFirmware, NovaError>> + Send;

    /// A flavor's name by ID; `None` from a cloud that cannot say (the
    /// in-process one), so the FRU shows no flavor.
    fn flavor_name(
        &self,
        _id: &str,
    ) -> impl Future<Output = Result<Option<String>, NovaError>> + Send {
        async { Ok(None) }
    }

    /// How long one call may take.
    fn timeout(&self) -> Duration;

    /// The HTTP client, for virtual media (Glance imports and uploads,
    /// Cinder volumes): a cloud without one (the in-process cloud) has no
    /// virtual media.
    fn media_client(&self) -> Option<&NovaClient> {
        None
    }

    /// A serial console websocket URL for a server. Clouds without serial
    /// consoles (and the in-process cloud) refuse it.
    fn serial_console(&self, id: &str) -> impl Future<Output = Result<String, NovaError>> + Send {
        let message = format!("no serial console for server {id} here");
        async move {
            Err(NovaError {
                kind: super::client::NovaErrorKind::Permanent,
                message,
            })
        }
    }

    /// The TLS client settings for the serial console websockets: the
    /// trust the cloud's API is reached with ([`trust`]); the public roots
    /// alone for a cloud without a `cacert`.
    fn console_tls(&self) -> Result<Arc<rustls::ClientConfig>, TrustError> {
        trust::client_config(None)
    }

    /// The last `length` lines of a server's console log.
    fn console_output(
        &self,
        id: &str,
        length: u32,
    ) -> impl Future<Output = Result<String, NovaError>> + Send {
        let _ = length;
        let message = format!("no console log for server {id} here");
        async move {
            Err(NovaError {
                kind: super::client::NovaErrorKind::Permanent,
                message,
            })
        }
    }
}

/// Each call's future is boxed: the HTTP client's are tens of KiB, and a
/// worker waiting for a permit of the call limit holds its call's future
/// unpolled. Boxed, the memory is taken when the call starts (permit in
/// hand), so it is bounded by the call limit, not by the node count.
impl Compute for NovaClient {
    async fn connect(&self) -> Result<(), NovaError> {
        Box::pin(NovaClient::connect(self)).await
    }

    async fn list_servers(
        &self,
        changes_since: Option<&str>,
        name: Option<&str>,
    ) -> Result<Listing, NovaError> {
        Box::pin(NovaClient::list_servers(self, changes_since, name)).await
    }

    async fn get_server(&self, id: &str) -> Result<ServerInfo, NovaError> {
        Box::pin(NovaClient::get_server(self, id)).await
    }

    async fn act(&self, id: &str, action: &ServerAction) -> Result<(), NovaError> {
        Box::pin(NovaClient::act(self, id, action)).await
    }

    async fn serial_console(&self, id: &str) -> Result<String, NovaError> {
        NovaClient::serial_console(self, id).await
    }

    async fn console_output(&self, id: &str, length: u32) -> Result<String, NovaError> {
        NovaClient::console_output(self, id, length).await
    }

    fn console_tls(&self) -> Result<Arc<rustls::ClientConfig>, TrustError> {
        trust::client_config(self.cacert())
    }

    async fn set_metadata(&self, id: &str, key: &str, value: &str) -> Result<(), NovaError> {
        Box::pin(NovaClient::set_metadata(self, id, key, value)).await
    }

    async fn find_image(&self, reference: &str) -> Result<ImageInfo, NovaError> {
        Box::pin(NovaClient::find_image(self, reference)).await
    }

    async fn image_firmware(&self, id: &str) -> Result<ImageFirmware, NovaError> {
        Box::pin(NovaClient::image_firmware(self, id)).await
    }

    async fn flavor_name(&self, id: &str) -> Result<Option<String>, NovaError> {
        NovaClient::flavor_name(self, id).await.map(Some)
    }

    fn timeout(&self) -> Duration {
        NovaClient::timeout(self)
    }

    fn media_client(&self) -> Option<&NovaClient> {
        Some(self)
    }
}
