//! A Nova server's serial console for Serial over LAN: a fresh
//! `remote-consoles` URL for every connection (Nova's tokens are good for
//! one), opened under the backend's rules for console websockets (the
//! cloud's TLS trust, `backend.allow_plain_console`), and
//! `os-getConsoleOutput` for the read-only fallback.
//!
//! Nova answers 400 (console type not enabled), 409 (server not in a
//! state to have one) or 501 (driver without serial consoles) where there
//! is none; those become [`ConsoleError::Unsupported`].

use std::sync::Arc;

use super::client::{NovaError, NovaErrorKind};
use super::compute::Compute;
use super::worker::WorkerContext;
use crate::backend::serial_console::{ConsoleAccess, ConsoleError, ConsoleFuture, ConsoleSource};

/// One server's console.
#[derive(Debug)]
pub struct NovaConsole<C> {
    pub(super) ctx: Arc<WorkerContext<C>>,
    /// The server's UUID.
    pub(super) server: String,
}

/// Whether a failed `remote-consoles` call means "this cloud has none".
fn unsupported(e: &NovaError) -> bool {
    matches!(
        e.kind,
        NovaErrorKind::Permanent
            | NovaErrorKind::NotImplemented
            | NovaErrorKind::Conflict
            | NovaErrorKind::Busy(_)
            | NovaErrorKind::WrongState(_)
    )
}

impl<C: Compute> ConsoleSource for NovaConsole<C> {
    fn open(&self) -> ConsoleFuture<'_, ConsoleAccess> {
        Box::pin(async move {
            match self.ctx.client.serial_console(&self.server).await {
                Ok(url) => Ok(ConsoleAccess::WebSocket {
                    url,
                    policy: self.ctx.console.clone(),
                }),
                Err(e) if unsupported(&e) => Err(ConsoleError::Unsupported(e.message)),
                Err(e) => Err(ConsoleError::Failed(e.message)),
            }
        })
    }

    fn log(&self, lines: u32) -> ConsoleFuture<'_, String> {
        Box::pin(async move {
            self.ctx
                .client
                .console_output(&self.server, lines)
                .await
                .map_err(|e| ConsoleError::Failed(e.message))
        })
    }
}
