//! What a backend tells the rest of the daemon about its cloud, without
//! knowing who listens: each cloud call, through a [`CallRecorder`] it is
//! given at start, and whether the cloud answered lately
//! ([`CloudHealth`]), which it exposes.
//!
//! The metrics endpoint implements the recorder and reads the health; the
//! backend never reaches for it, so the backend depends on no front door
//! and on no exporter, and `check` and `export` run the same client with
//! [`NoRecorder`].

use std::time::{Duration, Instant};

/// One finished cloud call.
#[derive(Clone, Copy, Debug)]
pub struct CloudCall<'a> {
    /// `identity`, `compute`, `image` or `volume`.
    pub service: &'static str,
    /// A fixed operation name (never one holding IDs, which would make a
    /// series per server).
    pub operation: &'static str,
    /// `ok`, or the kind of failure.
    pub status: &'a str,
    /// How long it took, authentication and body included.
    pub took: Duration,
}

/// Where a backend reports its cloud calls.
pub trait CallRecorder: Send + Sync + 'static {
    /// Records one call; must not block (it runs on the call's task).
    fn record(&self, call: CloudCall<'_>);

    /// Records the end of a virtual media load (`ok` or `failed`) and how
    /// long it took; must not block.
    fn media_load(&self, outcome: &'static str, took: Duration) {
        let _ = (outcome, took);
    }
}

impl std::fmt::Debug for dyn CallRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallRecorder")
    }
}

/// A recorder that keeps nothing, for one-shot commands.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRecorder;

impl CallRecorder for NoRecorder {
    fn record(&self, _: CloudCall<'_>) {}
}

/// When the cloud was last reached, for the health check.
pub trait CloudHealth: Send + Sync + 'static {
    /// When the last refresh succeeded; `None` before the first.
    fn last_refresh(&self) -> Option<Instant>;
    /// The refresh interval.
    fn refresh_interval(&self) -> Duration;
}

impl std::fmt::Debug for dyn CloudHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CloudHealth")
    }
}
