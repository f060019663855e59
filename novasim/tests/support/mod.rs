//! What the simulator's HTTP tests share: a simulator on a loopback port
//! of its own, an HTTP client without proxies, and a project-scoped token
//! with the Keystone answer it came in (catalog, project).

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use novabmc_novasim::{self as novasim, SimServer};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A started simulator and a logged-in client.
pub struct Started {
    /// The simulator.
    pub sim: SimServer,
    /// The client.
    pub http: Client,
    /// The `X-Auth-Token` to send.
    pub token: String,
    /// Keystone's token body (catalog, project).
    pub token_body: Value,
    /// Stops the simulator when dropped with the test's cloud.
    pub shutdown: CancellationToken,
}

/// Starts a simulator and logs in as its default user and project.
pub async fn start() -> Started {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let shutdown = CancellationToken::new();
    let sim = novasim::start(listener, novasim::Identity::default(), shutdown.clone())
        .expect("simulator");
    let http = Client::builder().no_proxy().build().expect("client");
    let id = novasim::Identity::default();
    let r = http
        .post(format!("{}/identity/v3/auth/tokens", sim.sim.base_url()))
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": id.user, "password": id.password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": id.project, "domain": {"name": "Default"}}}}}),
        )
        .send()
        .await
        .expect("token");
    let token = r.headers()["x-subject-token"]
        .to_str()
        .expect("token header")
        .to_string();
    let token_body: Value = r.json().await.expect("token body");
    Started {
        sim,
        http,
        token,
        token_body,
        shutdown,
    }
}
