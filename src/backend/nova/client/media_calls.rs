//! The calls virtual media makes: Glance images (create, interoperable
//! import with `web-download`, data upload, show, list by tag, delete),
//! Cinder volumes created from them, and Nova's volume attachments, plus
//! the compute API's highest microversion (stable-device rescue of a
//! volume-backed server needs 2.87).
//!
//! Glance API v2 (`/v2/images`, `/v2/info/import`, `/v2/images/{id}/import`,
//! `/v2/images/{id}/file`), Cinder v3 (`/volumes`), Nova
//! (`/servers/{id}/os-volume_attachments`). The upload is the one call not
//! bounded by the request timeout: it streams a whole image, and is bounded
//! by the import timeout its caller gives.

use std::time::Duration;

use osauth::ApiVersion;
use osauth::services::{COMPUTE, IMAGE};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::inventory_reads::Volumes;
use super::{NovaClient, NovaError, NovaErrorKind, json_of};

/// An image as virtual media needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ImageState {
    /// Image ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Glance status: queued, saving, importing, active, killed, deleted...
    pub status: String,
    /// Size in bytes, once the data is in.
    #[serde(default)]
    pub size: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The import lock Glance holds while an import runs.
    #[serde(default)]
    pub os_glance_import_task: Option<String>,
}

impl ImageState {
    /// Whether an import holds the image (taken before Glance answers the
    /// import call, released when it ends either way).
    pub fn import_locked(&self) -> bool {
        self.os_glance_import_task
            .as_deref()
            .is_some_and(|t| !t.is_empty())
    }
}

/// An image to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewImage {
    /// Name.
    pub name: String,
    /// Glance disk format (`iso`, `raw`).
    pub disk_format: &'static str,
    /// Tags.
    pub tags: Vec<String>,
    /// Extra properties.
    pub properties: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct ImagesPage {
    images: Vec<ImageState>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct VolumeRoot {
    volume: VolumeState,
}

/// A volume's ID, status and the servers it is attached to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VolumeState {
    /// Volume ID.
    pub id: String,
    /// Cinder status: creating, downloading, available, in-use, error...
    pub status: String,
    /// Its attachments.
    #[serde(default)]
    pub attachments: Vec<VolumeAttachmentRef>,
}

/// One attachment of a volume, as Cinder shows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VolumeAttachmentRef {
    /// The server it is attached to.
    pub server_id: String,
}

fn not_found_is_none<T>(r: Result<T, NovaError>) -> Result<Option<T>, NovaError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == NovaErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl NovaClient {
    /// The compute API's highest microversion (2.1 when it names none).
    pub async fn compute_max_minor(&self) -> Result<u16, NovaError> {
        self.bounded(
            ("compute", "discovery"),
            "compute version discovery",
            async {
                let s = self.session().await?;
                Ok(match s.get_api_versions(COMPUTE).await? {
                    Some((_, ApiVersion(2, minor))) => minor,
                    _ => 1,
                })
            },
        )
        .await
    }

    /// The import methods Glance offers (`GET /v2/info/import`); none from
    /// a Glance without interoperable import.
    pub async fn import_methods(&self) -> Result<Vec<String>, NovaError> {
        self.bounded(("image", "import_info"), "GET info/import", async {
            let r = self.send(|s| s.get(IMAGE, &["info", "import"])).await;
            let v: Value = match r {
                Ok(r) => json_of(r).await?,
                Err(e) if e.kind == NovaErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            Ok(v.pointer("/import-methods/value")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default())
        })
        .await
    }

    /// Creates an image record (status `queued`, no data yet).
    pub async fn create_image(&self, new: &NewImage) -> Result<ImageState, NovaError> {
        let mut body = Map::new();
        body.insert("name".into(), json!(new.name));
        body.insert("disk_format".into(), json!(new.disk_format));
        body.insert("container_format".into(), json!("bare"));
        body.insert("visibility".into(), json!("private"));
        body.insert("tags".into(), json!(new.tags));
        for (k, v) in &new.properties {
            body.insert(k.clone(), json!(v));
        }
        let body = Value::Object(body);
        self.bounded(
            ("image", "create_image"),
            &format!("POST images ({})", new.name),
            async {
                json_of(
                    self.send(|s| s.post(IMAGE, &["images"]).json(&body))
                        .await?,
                )
                .await
            },
        )
        .await
    }

    /// Asks Glance to fetch `uri` into the image itself (`web-download`).
    pub async fn web_download(&self, id: &str, uri: &str) -> Result<(), NovaError> {
        let body = json!({"method": {"name": "web-download", "uri": uri}});
        self.bounded(
            ("image", "import_image"),
            &format!("POST images/{id}/import (web-download)"),
            async {
                self.send(|s| s.post(IMAGE, &["images", id, "import"]).json(&body))
                    .await
                    .map(|_| ())
            },
        )
        .await
    }

    /// Streams `body` as the image's data (`PUT /v2/images/{id}/file`),
    /// within `within` (the whole transfer). Sent once: a stream cannot be
    /// replayed, so a token refused mid-way fails the call and the caller
    /// starts the upload again.
    pub async fn upload_image(
        &self,
        id: &str,
        body: reqwest::Body,
        within: Duration,
    ) -> Result<(), NovaError> {
        let call = format!("PUT images/{id}/file");
        let started = std::time::Instant::now();
        let fut = async {
            let s = self.session().await?;
            let r = s
                .put(IMAGE, &["images", id, "file"])
                .header("content-type", "application/octet-stream")
                .body(body)
                .send_unchecked()
                .await?;
            osauth::client::check(r).await?;
            Ok::<(), NovaError>(())
        };
        let r = match tokio::time::timeout(within, fut).await {
            Ok(r) => r.map_err(|e| e.during(&call)),
            Err(_) => Err(NovaError::timeout(&call, within)),
        };
        if let Err(e) = &r
            && e.kind == NovaErrorKind::Auth
        {
            self.drop_session().await;
        }
        self.recorder.record(crate::backend::telemetry::CloudCall {
            service: "image",
            operation: "upload_image",
            status: r.as_ref().map_or_else(|e| e.kind.name(), |_| "ok"),
            took: started.elapsed(),
        });
        r
    }

    /// An image's state; `None` once it no longer exists.
    pub async fn image_state(&self, id: &str) -> Result<Option<ImageState>, NovaError> {
        not_found_is_none(
            self.bounded(("image", "get_image"), &format!("GET images/{id}"), async {
                json_of(self.send(|s| s.get(IMAGE, &["images", id])).await?).await
            })
            .await,
        )
    }

    /// Deletes an image; one already gone is not an error.
    pub async fn delete_image(&self, id: &str) -> Result<(), NovaError> {
        not_found_is_none(
            self.bounded(
                ("image", "delete_image"),
                &format!("DELETE images/{id}"),
                async {
                    self.send(|s| s.delete(IMAGE, &["images", id]))
                        .await
                        .map(|_| ())
                },
            )
            .await,
        )
        .map(|_| ())
    }

    /// The images carrying `tag`, following pagination.
    pub async fn images_tagged(&self, tag: &str) -> Result<Vec<ImageState>, NovaError> {
        self.bounded(
            ("image", "list_images"),
            &format!("GET images?tag={tag}"),
            async {
                let mut out = Vec::new();
                let mut marker: Option<String> = None;
                loop {
                    let mut query = vec![("tag", tag.to_string())];
                    if let Some(m) = &marker {
                        query.push(("marker", m.clone()));
                    }
                    let page: ImagesPage = json_of(
                        self.send(|s| s.get(IMAGE, &["images"]).query(&query))
                            .await?,
                    )
                    .await?;
                    let last = page.images.last().map(|i| i.id.clone());
                    // Kept only if tagged so: a Glance that ignored the
                    // filter must not make another image look like ours.
                    out.extend(
                        page.images
                            .into_iter()
                            .filter(|i| i.tags.iter().any(|t| t == tag)),
                    );
                    match (page.next, last) {
                        (Some(_), Some(l)) if Some(&l) != marker.as_ref() => marker = Some(l),
                        _ => break,
                    }
                }
                Ok(out)
            },
        )
        .await
    }

    /// Creates a volume of `size_gb` from an image.
    pub async fn create_volume(
        &self,
        name: &str,
        image: &str,
        size_gb: u64,
    ) -> Result<VolumeState, NovaError> {
        let body = json!({"volume": {"name": name, "size": size_gb, "imageRef": image,
            "description": "virtual media of novabmc"}});
        self.bounded(
            ("volume", "create_volume"),
            &format!("POST volumes ({name})"),
            async {
                let svc = self.volume_service().await?;
                let root: VolumeRoot =
                    json_of(self.send(|s| s.post(svc, &["volumes"]).json(&body)).await?).await?;
                Ok(root.volume)
            },
        )
        .await
    }

    /// A volume's state; `None` once it no longer exists.
    pub async fn volume_state(&self, id: &str) -> Result<Option<VolumeState>, NovaError> {
        not_found_is_none(
            self.bounded(
                ("volume", "get_volume"),
                &format!("GET volumes/{id}"),
                async {
                    let svc: Volumes = self.volume_service().await?;
                    let root: VolumeRoot =
                        json_of(self.send(|s| s.get(svc, &["volumes", id])).await?).await?;
                    Ok(root.volume)
                },
            )
            .await,
        )
    }

    /// Deletes a volume; one already gone is not an error.
    pub async fn delete_volume(&self, id: &str) -> Result<(), NovaError> {
        not_found_is_none(
            self.bounded(
                ("volume", "delete_volume"),
                &format!("DELETE volumes/{id}"),
                async {
                    let svc = self.volume_service().await?;
                    self.send(|s| s.delete(svc, &["volumes", id]))
                        .await
                        .map(|_| ())
                },
            )
            .await,
        )
        .map(|_| ())
    }

    /// Attaches a volume to a server.
    pub async fn attach_volume(&self, server: &str, volume: &str) -> Result<(), NovaError> {
        let body = json!({"volumeAttachment": {"volumeId": volume}});
        self.bounded(
            ("compute", "attach_volume"),
            &format!("POST servers/{server}/os-volume_attachments ({volume})"),
            async {
                self.send(|s| {
                    s.post(COMPUTE, &["servers", server, "os-volume_attachments"])
                        .json(&body)
                })
                .await
                .map(|_| ())
            },
        )
        .await
    }

    /// Detaches a volume; one not attached is not an error.
    pub async fn detach_volume(&self, server: &str, volume: &str) -> Result<(), NovaError> {
        let r = self
            .bounded(
                ("compute", "detach_volume"),
                &format!("DELETE servers/{server}/os-volume_attachments/{volume}"),
                async {
                    self.send(|s| {
                        s.delete(
                            COMPUTE,
                            &["servers", server, "os-volume_attachments", volume],
                        )
                    })
                    .await
                    .map(|_| ())
                },
            )
            .await;
        match r {
            Err(e) if e.kind == NovaErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
}
