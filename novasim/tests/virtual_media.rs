//! The simulator's Glance import, Nova rescue modes and Cinder volumes
//! over real HTTP, as novabmc's virtual media uses them: an ISO imported
//! from a URL (web-download) or uploaded, booted by a stable-device rescue
//! as a CD-ROM with the disk kept, and a volume made from an image
//! attached and detached.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use novabmc_novasim::{self as novasim, NewImage, NewServer, SimServer};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Cloud {
    sim: SimServer,
    http: Client,
    token: String,
    project: String,
    _shutdown: CancellationToken,
}

impl Cloud {
    async fn start() -> Cloud {
        let s = support::start().await;
        let project = s.token_body["token"]["project"]["id"]
            .as_str()
            .expect("project")
            .to_string();
        Cloud {
            sim: s.sim,
            http: s.http,
            token: s.token,
            project,
            _shutdown: s.shutdown,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.sim.base_url())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, String) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("x-auth-token", &self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.header("content-type", "application/json");
            }
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = self.call(Method::GET, path, None, &[]).await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value, String) {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    async fn action(&self, server: &str, body: Value, version: &str) -> (StatusCode, Value) {
        let (s, v, _) = self
            .call(
                Method::POST,
                &format!("/compute/v2.1/servers/{server}/action"),
                Some(body),
                &[("openstack-api-version", version)],
            )
            .await;
        (s, v)
    }

    /// A queued ISO image with `props`.
    async fn new_image(&self, props: Value) -> String {
        let mut body = json!({"name": "media.iso", "disk_format": "iso",
            "container_format": "bare", "visibility": "private"});
        if let Value::Object(p) = props {
            for (k, v) in p {
                body[k] = v;
            }
        }
        let (s, v, text) = self.post("/image/v2/images", body).await;
        assert_eq!(s, StatusCode::CREATED, "{text}");
        assert_eq!(v["status"], "queued");
        v["id"].as_str().expect("id").to_string()
    }

    async fn image(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/image/v2/images/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        v
    }

    /// Polls image `id` until its status is `want`.
    async fn image_becomes(&self, id: &str, want: &str) -> Value {
        for _ in 0..200 {
            let v = self.image(id).await;
            if v["status"] == want {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("image {id} never became {want}: {}", self.image(id).await);
    }

    async fn volume_becomes(&self, id: &str, want: &str) -> Value {
        for _ in 0..200 {
            let (_, v) = self
                .get(&format!("/volume/v3/{}/volumes/{id}", self.project))
                .await;
            if v["volume"]["status"] == want {
                return v["volume"].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("volume {id} never became {want}");
    }

    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("control");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    fn server(&self, id: &str) -> novasim::model::Server {
        self.sim
            .sim
            .servers()
            .into_iter()
            .find(|s| s.id == id)
            .expect("server")
    }
}

/// A file server on loopback: `GET /media.iso` answers `bytes`.
async fn file_server(bytes: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/media.iso", get(move || async move { bytes }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/media.iso")
}

const ISO: &[u8] = b"CD001 a tiny bootable medium, only for the simulator";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_download_imports_a_url_served_on_loopback() {
    let cloud = Cloud::start().await;
    let url = file_server(ISO).await;
    let (s, info) = cloud.get("/image/v2/info/import").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        info["import-methods"]["value"],
        json!(["glance-direct", "web-download", "copy-image"])
    );
    let id = cloud
        .new_image(json!({"hw_rescue_device": "cdrom", "hw_rescue_bus": "sata"}))
        .await;
    let (s, _, text) = cloud
        .post(
            &format!("/image/v2/images/{id}/import"),
            json!({"method": {"name": "web-download", "uri": url}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{text}");
    assert!(text.is_empty());
    let image = cloud.image_becomes(&id, "active").await;
    assert_eq!(image["size"], ISO.len());
    assert_eq!(image["os_hash_algo"], "sha512");
    use md5::Digest as _;
    assert_eq!(image["checksum"], hex::encode(md5::Md5::digest(ISO)));
    assert_eq!(
        image["os_hash_value"],
        hex::encode(sha2::Sha512::digest(ISO))
    );
    assert_eq!(image["hw_rescue_device"], "cdrom");
    assert!(image.get("os_glance_import_task").is_none());
    // A second web-download of an active image is Glance's 409.
    let (s, _, text) = cloud
        .post(
            &format!("/image/v2/images/{id}/import"),
            json!({"method": {"name": "web-download", "uri": url}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(text.contains("Image with status active cannot be target for import"));
    // The simulator's record, and the request log.
    let images = cloud.control(Method::GET, "/_sim/images", None).await;
    let record = images["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["id"] == id.as_str())
        .expect("image")["import"]
        .clone();
    assert_eq!(record["state"], "success");
    assert_eq!(record["bytes"], ISO.len());
    let log = cloud.control(Method::GET, "/_sim/requests", None).await;
    assert!(
        log["requests"]
            .as_array()
            .expect("log")
            .iter()
            .any(|r| r["path"] == format!("/image/v2/images/{id}/import")
                && r["status"] == 202
                && r["body"]["method"]["uri"] == url.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_web_download_goes_back_to_queued() {
    let cloud = Cloud::start().await;
    let url = file_server(ISO).await.replace("media.iso", "missing.iso");
    let id = cloud.new_image(json!({})).await;
    let (s, _, _) = cloud
        .post(
            &format!("/image/v2/images/{id}/import"),
            json!({"method": {"name": "web-download", "uri": url}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    for _ in 0..200 {
        let images = cloud.sim.sim.images();
        let i = images.iter().find(|i| i.id == id).expect("image");
        if i.import.as_ref().is_some_and(|r| r.state == "failure") {
            assert_eq!(i.status, "queued");
            assert!(i.size.is_none());
            assert_eq!(
                i.properties
                    .get("os_glance_failed_import")
                    .map(String::as_str),
                Some("")
            );
            assert!(!i.properties.contains_key("os_glance_import_task"));
            assert!(i.import.as_ref().and_then(|r| r.error.clone()).is_some());
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the import never failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_by_put_file_makes_the_image_active() {
    let cloud = Cloud::start().await;
    let id = cloud.new_image(json!({"tags": ["virtual-media"]})).await;
    // The JSON patch Glance takes, then the data.
    let (s, v, text) = cloud
        .call(
            Method::PATCH,
            &format!("/image/v2/images/{id}"),
            Some(
                json!([{"op": "add", "path": "/hw_rescue_device", "value": "cdrom"},
                        {"op": "replace", "path": "/name", "value": "renamed.iso"}]),
            ),
            &[(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(v["hw_rescue_device"], "cdrom");
    assert_eq!(v["name"], "renamed.iso");
    let (s, _, _) = cloud
        .call(
            Method::PATCH,
            &format!("/image/v2/images/{id}"),
            Some(json!([{"op": "remove", "path": "/hw_rescue_bus"}])),
            &[(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )],
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "removing a missing property");
    let (s, _, _) = cloud
        .call(
            Method::PATCH,
            &format!("/image/v2/images/{id}"),
            Some(json!([])),
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let data = vec![7u8; 3 << 20];
    let r = cloud
        .http
        .put(cloud.url(&format!("/image/v2/images/{id}/file")))
        .header("x-auth-token", &cloud.token)
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let image = cloud.image(&id).await;
    assert_eq!(image["status"], "active");
    assert_eq!(image["size"], data.len());
    assert_eq!(image["tags"], json!(["virtual-media"]));
    // A second upload is a refused status transition.
    let r = cloud
        .http
        .put(cloud.url(&format!("/image/v2/images/{id}/file")))
        .header("x-auth-token", &cloud.token)
        .header("content-type", "application/octet-stream")
        .body(vec![1u8; 10])
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let (s, v) = cloud.get("/image/v2/images?name=renamed.iso").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["images"][0]["id"], id.as_str());
    let (s, _, _) = cloud
        .call(Method::DELETE, &format!("/image/v2/images/{id}"), None, &[])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = cloud.get(&format!("/image/v2/images/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refused_by_the_fault_hook_and_by_the_filter() {
    let cloud = Cloud::start().await;
    let url = file_server(ISO).await;
    let id = cloud.new_image(json!({})).await;
    cloud
        .control(
            Method::PUT,
            "/_sim/faults",
            Some(json!({"import_refuse_status": 403})),
        )
        .await;
    let import = json!({"method": {"name": "web-download", "uri": url}});
    let (s, _, text) = cloud
        .post(&format!("/image/v2/images/{id}/import"), import.clone())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(cloud.image(&id).await["status"], "queued");
    cloud
        .control(Method::PUT, "/_sim/faults", Some(json!({})))
        .await;
    // Glance's URL filtering: loopback and a port other than 80/443.
    let mut settings = cloud
        .control(Method::GET, "/_sim/glance/import", None)
        .await;
    settings["filter_uris"] = json!(true);
    cloud
        .control(Method::PUT, "/_sim/glance/import", Some(settings))
        .await;
    let (s, _, text) = cloud
        .post(&format!("/image/v2/images/{id}/import"), import)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        text.contains("URI for web-download does not pass filtering"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_download_turned_off() {
    let cloud = Cloud::start().await;
    cloud
        .control(
            Method::PUT,
            "/_sim/glance/import",
            Some(json!({"methods": ["glance-direct"]})),
        )
        .await;
    let (_, info) = cloud.get("/image/v2/info/import").await;
    assert_eq!(info["import-methods"]["value"], json!(["glance-direct"]));
    let id = cloud.new_image(json!({})).await;
    let (s, _, text) = cloud
        .post(
            &format!("/image/v2/images/{id}/import"),
            json!({"method": {"name": "web-download", "uri": "http://example.org/x.iso"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text.contains("Unknown import method name 'web-download'."));
}

/// An active image with these properties, through the control API.
fn rescue_image(cloud: &Cloud, props: &[(&str, &str)]) -> String {
    cloud.sim.sim.add_image_with(NewImage {
        name: "rescue".into(),
        hw_firmware_type: None,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_device_rescue_attaches_a_cdrom_and_keeps_the_disk() {
    let cloud = Cloud::start().await;
    let disk_image = cloud.sim.sim.add_image("disk", None);
    let server = cloud
        .sim
        .sim
        .add_server(NewServer::named("vm").on().image(&disk_image))
        .expect("server");
    let iso = rescue_image(
        &cloud,
        &[("hw_rescue_device", "cdrom"), ("hw_rescue_bus", "sata")],
    );
    let (s, v) = cloud
        .action(
            &server,
            json!({"rescue": {"rescue_image_ref": iso}}),
            "compute 2.87",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rec = cloud.server(&server);
    let rescue = rec.rescue.expect("rescued");
    assert_eq!(
        (
            rescue.image.as_str(),
            rescue.mode,
            rescue.device.as_deref(),
            rescue.bus.as_deref()
        ),
        (iso.as_str(), "stable", Some("cdrom"), Some("sata"))
    );
    assert_eq!(rec.image, disk_image, "the root disk is kept");
    assert_eq!(rec.boots.last().map(|b| b.from), Some("rescue"));
    // Unrescue as before: the disk boots again, the record is cleared.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let (s, _) = cloud
        .action(&server, json!({"unrescue": null}), "compute 2.87")
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let rec = cloud.server(&server);
    assert!(rec.rescue.is_none() && rec.rescue_image.is_none());
    assert_eq!(rec.boots.last().map(|b| b.from), Some("disk"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescue_without_properties_is_legacy_and_bus_defaults_follow_libvirt() {
    let cloud = Cloud::start().await;
    let server = cloud
        .sim
        .sim
        .add_server(NewServer::named("vm").on())
        .expect("server");
    let plain = rescue_image(&cloud, &[]);
    let (s, v) = cloud
        .action(
            &server,
            json!({"rescue": {"rescue_image_ref": plain}}),
            "compute 2.87",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["adminPass"], "sim-admin-pass");
    let rescue = cloud.server(&server).rescue.expect("rescued");
    assert_eq!((rescue.mode, rescue.device), ("legacy", None));
    // A device without a bus: libvirt's default bus for it (x86 `pc`).
    let other = cloud
        .sim
        .sim
        .add_server(NewServer::named("vm2").on())
        .expect("server");
    let cd = rescue_image(&cloud, &[("hw_rescue_device", "cdrom")]);
    let (s, _) = cloud
        .action(
            &other,
            json!({"rescue": {"rescue_image_ref": cd}}),
            "compute 2.1",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let rescue = cloud.server(&other).rescue.expect("rescued");
    assert_eq!(
        (rescue.mode, rescue.device.as_deref(), rescue.bus.as_deref()),
        ("stable", Some("cdrom"), Some("ide"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_backed_rescue_needs_2_87_and_both_properties() {
    let cloud = Cloud::start().await;
    let server = cloud
        .sim
        .sim
        .add_server(NewServer {
            volume_gb: Some(20),
            ..NewServer::named("bfv").on()
        })
        .expect("server");
    let iso = rescue_image(
        &cloud,
        &[("hw_rescue_device", "cdrom"), ("hw_rescue_bus", "sata")],
    );
    let refused =
        format!("Instance {server} cannot be rescued: Cannot rescue a volume-backed instance");
    // Below 2.87 Nova refuses to rescue a volume-backed server at all.
    let (s, v) = cloud
        .action(
            &server,
            json!({"rescue": {"rescue_image_ref": iso}}),
            "compute 2.86",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["badRequest"]["message"], refused.as_str());
    // At 2.87, an image with only one of the properties is not enough.
    let half = rescue_image(&cloud, &[("hw_rescue_device", "cdrom")]);
    let (s, v) = cloud
        .action(
            &server,
            json!({"rescue": {"rescue_image_ref": half}}),
            "compute 2.87",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["badRequest"]["message"], refused.as_str());
    assert!(cloud.server(&server).rescue.is_none());
    let (s, _) = cloud
        .action(
            &server,
            json!({"rescue": {"rescue_image_ref": iso}}),
            "compute 2.87",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let rec = cloud.server(&server);
    assert_eq!(rec.rescue.map(|r| r.mode), Some("stable"));
    assert_eq!(rec.volumes.len(), 1, "the root volume stays attached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_from_image_attach_refused_delete_detach_delete() {
    let cloud = Cloud::start().await;
    let server = cloud
        .sim
        .sim
        .add_server(NewServer::named("vm").on())
        .expect("server");
    let image = cloud.sim.sim.add_image("config-drive", None);
    let p = cloud.project.clone();
    let (s, v, text) = cloud
        .post(
            &format!("/volume/v3/{p}/volumes"),
            json!({"volume": {"size": 1, "imageRef": image, "name": "config"}}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{text}");
    assert_eq!(v["volume"]["status"], "creating");
    let volume = v["volume"]["id"].as_str().expect("id").to_string();
    let ready = cloud.volume_becomes(&volume, "available").await;
    assert_eq!(ready["bootable"], "true");
    assert_eq!(ready["volume_image_metadata"]["image_id"], image.as_str());
    // Attach through Nova.
    let (s, v, text) = cloud
        .call(
            Method::POST,
            &format!("/compute/v2.1/servers/{server}/os-volume_attachments"),
            Some(json!({"volumeAttachment": {"volumeId": volume}})),
            &[("openstack-api-version", "compute 2.79")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(v["volumeAttachment"]["device"], "/dev/vdb");
    assert_eq!(v["volumeAttachment"]["delete_on_termination"], false);
    let attached = cloud.volume_becomes(&volume, "in-use").await;
    assert_eq!(attached["attachments"][0]["server_id"], server.as_str());
    let (_, list) = cloud
        .get(&format!(
            "/compute/v2.1/servers/{server}/os-volume_attachments"
        ))
        .await;
    assert_eq!(list["volumeAttachments"][0]["volumeId"], volume.as_str());
    // Cinder refuses to delete an attached volume.
    let (s, v, _) = cloud
        .call(
            Method::DELETE,
            &format!("/volume/v3/{p}/volumes/{volume}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["badRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid volume: Volume status must be available"))
    );
    // Detach, then delete.
    let (s, _, _) = cloud
        .call(
            Method::DELETE,
            &format!("/compute/v2.1/servers/{server}/os-volume_attachments/{volume}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    cloud.volume_becomes(&volume, "available").await;
    let (s, _, _) = cloud
        .call(
            Method::DELETE,
            &format!("/volume/v3/{p}/volumes/{volume}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let volumes = cloud.control(Method::GET, "/_sim/volumes", None).await;
    assert_eq!(volumes["volumes"], json!([]));
    let (s, _) = cloud.get(&format!("/volume/v3/{p}/volumes/{volume}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
