//! The simulator's server tags over real HTTP, as novabmc's discovery
//! uses them: the tag routes from microversion 2.26 (404 below), the
//! `tags` field of a server body, and a listing filtered by tag.

mod support;

use novabmc_novasim::{NewServer, SimServer};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Cloud {
    sim: SimServer,
    http: Client,
    token: String,
    _shutdown: CancellationToken,
}

impl Cloud {
    async fn start() -> Cloud {
        let s = support::start().await;
        Cloud {
            sim: s.sim,
            http: s.http,
            token: s.token,
            _shutdown: s.shutdown,
        }
    }

    /// A compute call at microversion `version`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        version: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(
                method,
                format!("{}/compute/v2.1{path}", self.sim.sim.base_url()),
            )
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", format!("compute {version}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn names(listing: &Value) -> Vec<String> {
        let mut names: Vec<String> = listing["servers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_are_set_shown_and_filtered_from_2_26() {
    let c = Cloud::start().await;
    let a = c
        .sim
        .sim
        .add_server(NewServer {
            tags: vec!["baremetal".into()],
            ..NewServer::named("a")
        })
        .expect("a");
    let b = c.sim.sim.add_server(NewServer::named("b")).expect("b");
    assert!(
        c.sim
            .sim
            .add_server(NewServer {
                tags: vec!["bad/tag".into()],
                ..NewServer::named("c")
            })
            .is_err()
    );

    // Below 2.26: no tag routes, and the filter is ignored.
    let (status, _) = c
        .call(Method::GET, &format!("/servers/{a}/tags"), "2.25", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, all) = c
        .call(Method::GET, "/servers/detail?tags=baremetal", "2.25", None)
        .await;
    assert_eq!(Cloud::names(&all), ["a", "b"]);
    assert!(all["servers"][0].get("tags").is_none());

    // From 2.26.
    let (status, tags) = c
        .call(Method::GET, &format!("/servers/{a}/tags"), "2.26", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tags, json!({"tags": ["baremetal"]}));
    let (_, tagged) = c
        .call(Method::GET, "/servers/detail?tags=baremetal", "2.26", None)
        .await;
    assert_eq!(Cloud::names(&tagged), ["a"]);
    assert_eq!(tagged["servers"][0]["tags"], json!(["baremetal"]));

    // One tag added (201, then 204 again), checked, and the listing follows.
    let path = format!("/servers/{b}/tags/baremetal");
    let (status, _) = c.call(Method::PUT, &path, "2.26", None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c.call(Method::PUT, &path, "2.26", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = c.call(Method::GET, &path, "2.26", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, tagged) = c
        .call(Method::GET, "/servers/detail?tags=baremetal", "2.26", None)
        .await;
    assert_eq!(Cloud::names(&tagged), ["a", "b"]);

    // Replaced, refused when invalid, removed.
    let (status, tags) = c
        .call(
            Method::PUT,
            &format!("/servers/{a}/tags"),
            "2.26",
            Some(json!({"tags": ["rack1", "other"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tags, json!({"tags": ["other", "rack1"]}));
    let (status, _) = c
        .call(
            Method::PUT,
            &format!("/servers/{a}/tags"),
            "2.26",
            Some(json!({"tags": ["a,b"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = c.call(Method::DELETE, &path, "2.26", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = c.call(Method::GET, &path, "2.26", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, tagged) = c
        .call(Method::GET, "/servers/detail?tags=baremetal", "2.26", None)
        .await;
    assert_eq!(Cloud::names(&tagged), Vec::<String>::new());
    let (_, any) = c
        .call(
            Method::GET,
            "/servers/detail?tags-any=rack1,baremetal",
            "2.26",
            None,
        )
        .await;
    assert_eq!(Cloud::names(&any), ["a"]);
}
