//! `serve`'s routes. At start every node whose address is configured gets
//! its rule and route, and a conflict stops the start. A node whose
//! address is not there yet (the sockets are bound with IP_FREEBIND, so
//! `serve` may start before DHCP has run) does not stop it: a background
//! task looks again every few seconds, warns while the address is missing,
//! and installs as soon as it appears. At shutdown exactly what this
//! process would install is removed, unless `keep_routes` is set.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::model::{Change, Found, Interfaces, Resolved, resolve};
use super::netlink::Netlink;
use super::{RouteSpec, RoutingError, ops};

/// How long the background task waits between looks for a missing address.
const RETRY: Duration = Duration::from_secs(2);

/// A node still waiting is warned about on the first look and then every
/// this many looks (about half a minute), so the log shows it without
/// being flooded.
const WARN_EVERY: u32 = 15;

/// The routes `serve` installed, and the task installing the rest.
#[derive(Debug)]
pub struct Installation {
    nl: Netlink,
    specs: Vec<RouteSpec>,
    keep_routes: bool,
    stop: CancellationToken,
    waiters: Vec<JoinHandle<()>>,
}

impl Installation {
    /// Installs what can be installed now and starts waiting for the rest.
    /// On a conflict or a refused change, what was installed is removed
    /// again (unless `keep_routes`) and the error returned.
    pub async fn start(
        specs: Vec<RouteSpec>,
        keep_routes: bool,
    ) -> Result<Installation, RoutingError> {
        let nl = Netlink::connect()?;
        let mut this = Installation {
            nl: nl.clone(),
            specs,
            keep_routes,
            stop: CancellationToken::new(),
            waiters: Vec::new(),
        };
        let ifs = nl.interfaces().await?;
        let mut snap = nl.snapshot(&ifs).await?;
        let mut pending = Vec::new();
        for spec in &this.specs {
            match resolve(spec, &ifs) {
                Ok(r) => match ops::install(&nl, &mut snap, spec, &r).await {
                    Ok(steps) => log_installed(spec, &r, &steps),
                    Err(e) => {
                        if !this.keep_routes {
                            this.remove_all().await;
                        }
                        return Err(e);
                    }
                },
                Err(reason) => {
                    warn!(
                        node = %spec.node,
                        %reason,
                        "routes not installed yet; will install them when the address appears"
                    );
                    pending.push(spec.clone());
                }
            }
        }
        if !pending.is_empty() {
            this.waiters.push(tokio::spawn(wait_and_install(
                nl,
                pending,
                this.stop.clone(),
            )));
        }
        Ok(this)
    }

    /// Moves to a new set of specs (a reload): removes what this process
    /// installed for specs no longer wanted (nodes removed, or whose route
    /// changed), and installs the new ones (or waits for their address).
    /// Unchanged nodes' entries are not touched. Failures are logged; a
    /// conflict is returned after the others were done.
    pub async fn update(&mut self, specs: Vec<RouteSpec>) -> Result<(), RoutingError> {
        let gone: Vec<RouteSpec> = self
            .specs
            .iter()
            .filter(|s| !specs.contains(s))
            .cloned()
            .collect();
        let added: Vec<RouteSpec> = specs
            .iter()
            .filter(|s| !self.specs.contains(s))
            .cloned()
            .collect();
        let ifs = self.nl.interfaces().await?;
        let mut snap = self.nl.snapshot(&ifs).await?;
        let mut first = None;
        for spec in &gone {
            match ops::remove(&self.nl, &mut snap, spec, &ifs).await {
                Ok(steps) if !steps.is_empty() => {
                    info!(node = %spec.node, removed = %join(&steps), "routes removed");
                }
                Ok(_) => {}
                Err(e) => {
                    first.get_or_insert(logged(e));
                }
            }
        }
        let mut pending = Vec::new();
        for spec in &added {
            match resolve(spec, &ifs) {
                Ok(r) => match ops::install(&self.nl, &mut snap, spec, &r).await {
                    Ok(steps) => log_installed(spec, &r, &steps),
                    Err(e) => {
                        first.get_or_insert(logged(e));
                    }
                },
                Err(_) => pending.push(spec.clone()),
            }
        }
        if !pending.is_empty() {
            self.waiters.push(tokio::spawn(wait_and_install(
                self.nl.clone(),
                pending,
                self.stop.clone(),
            )));
        }
        self.specs = specs;
        first.map_or(Ok(()), Err)
    }

    /// Stops the background task and, unless `keep_routes`, removes the
    /// rules and routes this process would install. Failures are logged;
    /// the result says whether there were any.
    pub async fn stop(mut self) -> Result<(), RoutingError> {
        self.stop.cancel();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.await;
        }
        if self.keep_routes {
            info!(
                nodes = self.specs.len(),
                "keeping routes (routing.keep_routes)"
            );
            return Ok(());
        }
        match self.remove_all().await {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Removes every node's entries; logs each failure and returns the
    /// first.
    async fn remove_all(&mut self) -> Option<RoutingError> {
        let ifs = match self.nl.interfaces().await {
            Ok(ifs) => ifs,
            Err(e) => return Some(logged(e)),
        };
        let mut snap = match self.nl.snapshot(&ifs).await {
            Ok(s) => s,
            Err(e) => return Some(logged(e)),
        };
        let mut first = None;
        for spec in &self.specs {
            match ops::remove(&self.nl, &mut snap, spec, &ifs).await {
                Ok(steps) if !steps.is_empty() => {
                    info!(node = %spec.node, removed = %join(&steps), "routes removed");
                }
                Ok(_) => {}
                Err(e) => {
                    let e = logged(e);
                    first.get_or_insert(e);
                }
            }
        }
        first
    }
}

fn logged(e: RoutingError) -> RoutingError {
    error!("{e}");
    e
}

fn join(steps: &[Change]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn log_installed(spec: &RouteSpec, r: &Resolved, steps: &[Change]) {
    if let Found::ConfiguredButAddressOn(other) = &r.found {
        warn!(
            node = %spec.node,
            interface = %r.route.interface,
            address_on = %other,
            "the configured interface does not hold the node's address; using it anyway"
        );
    }
    if steps.is_empty() {
        info!(node = %spec.node, rule = %r.rule, route = %r.route, "routes already in place");
    } else {
        info!(node = %spec.node, done = %join(steps), "routes installed");
    }
}

/// Looks for the pending nodes' addresses every [`RETRY`] until all are
/// installed or `stop` is cancelled. A conflict found now cannot stop a
/// running daemon, so it is logged as an error and the node given up.
async fn wait_and_install(nl: Netlink, mut pending: Vec<RouteSpec>, stop: CancellationToken) {
    let mut look = 0u32;
    while !pending.is_empty() {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
        look += 1;
        let ifs = match nl.interfaces().await {
            Ok(ifs) => ifs,
            Err(e) => {
                warn!("{e}");
                continue;
            }
        };
        let mut still = Vec::new();
        for spec in pending {
            if !try_install(&nl, &ifs, &spec, look).await {
                still.push(spec);
            }
        }
        pending = still;
    }
}

/// One look for one node; true when it needs no further look.
async fn try_install(nl: &Netlink, ifs: &Interfaces, spec: &RouteSpec, look: u32) -> bool {
    let r = match resolve(spec, ifs) {
        Ok(r) => r,
        Err(reason) => {
            if look.is_multiple_of(WARN_EVERY) {
                warn!(node = %spec.node, %reason, "still waiting to install routes");
            }
            return false;
        }
    };
    // A fresh snapshot per node: others may have changed the tables since.
    let mut snap = match nl.snapshot(ifs).await {
        Ok(s) => s,
        Err(e) => {
            warn!("{e}");
            return false;
        }
    };
    match ops::install(nl, &mut snap, spec, &r).await {
        Ok(steps) => {
            log_installed(spec, &r, &steps);
            true
        }
        Err(e @ RoutingError::Conflict { .. }) => {
            error!("{e}; replies from this node will follow the main table");
            true
        }
        Err(e) => {
            warn!("{e}; trying again");
            false
        }
    }
}
