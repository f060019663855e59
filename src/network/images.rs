//! The iPXE images the network boot modes rebuild or rescue with,
//! uploaded to Glance from files the operator names (Debian's `ipxe`
//! package: `/usr/lib/ipxe/ipxe.iso`, which boots BIOS and UEFI
//! machines), `hw_firmware_type=uefi` on the UEFI one, tagged as
//! novabmc's. An image of that name with the file's SHA-512 is the one:
//! uploaded once, found the next time. A changed file is uploaded anew and
//! novabmc's older image of that name deleted; someone else's image of
//! that name with other content is an error, as a name would then find
//! two images.

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::cloud::{Call, NetError, stand_in};
use super::context::Run;
use super::resources::Marks;
use crate::backend::nova::client::Api;
use crate::config::ImageSpec;

/// An image as novabmc reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    /// ID.
    pub id: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// `queued`, `active`...
    #[serde(default)]
    pub status: String,
    /// SHA-512 of the data.
    #[serde(default)]
    pub os_hash_value: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `hw_firmware_type`.
    #[serde(default)]
    pub hw_firmware_type: Option<String>,
}

/// Glance images named `name`.
async fn named(run: &Run<'_>, name: &str) -> Result<Vec<Image>, NetError> {
    let v = run
        .cloud
        .read(
            &format!("list images named {name}"),
            Call::get(Api::Image, &["images"]).query(&[("name", name)]),
        )
        .await?;
    parse_images(&v)
}

fn parse_images(v: &Value) -> Result<Vec<Image>, NetError> {
    serde_json::from_value(v["images"].clone())
        .map_err(|e| NetError::Mismatch(format!("unreadable image list from Glance: {e}")))
}

/// novabmc's images (tagged with its instance mark).
pub async fn ours(run: &Run<'_>, marks: &Marks) -> Result<Vec<Image>, NetError> {
    let v = run
        .cloud
        .read(
            "list novabmc's images",
            Call::get(Api::Image, &["images"]).query(&[("tag", &marks.instance)]),
        )
        .await?;
    parse_images(&v)
}

/// Uploads each configured image that Glance does not hold yet.
pub async fn apply(run: &mut Run<'_>) -> Result<(), NetError> {
    for spec in run.config.images.clone() {
        one(run, &spec).await?;
    }
    Ok(())
}

async fn one(run: &mut Run<'_>, spec: &ImageSpec) -> Result<(), NetError> {
    let data = std::fs::read(&spec.file)
        .map_err(|e| NetError::Host(format!("cannot read {}: {e}", spec.file.display())))?;
    let hash = hex::encode(sha2::Sha512::digest(&data));
    let firmware = spec.uefi.then_some("uefi");
    let what = format!(
        "image {} from {}{}",
        spec.name,
        spec.file.display(),
        if spec.uefi { " (uefi)" } else { "" }
    );
    let existing = named(run, &spec.name).await?;
    let ours = |i: &Image| run.marks.tagged(&i.tags);
    if let Some(i) = existing
        .iter()
        .find(|i| i.os_hash_value.as_deref() == Some(hash.as_str()))
    {
        if i.hw_firmware_type.as_deref() != firmware {
            let patch = match firmware {
                Some(f) => json!([{"op": "add", "path": "/hw_firmware_type", "value": f}]),
                None => json!([{"op": "remove", "path": "/hw_firmware_type"}]),
            };
            run.cloud
                .change(
                    &format!("set hw_firmware_type of image {}", spec.name),
                    Call::patch(Api::Image, &["images", &i.id], patch),
                    Value::Null,
                )
                .await?;
            run.report.changed("images", what, "hw_firmware_type");
        } else {
            run.report.present("images", what, i.id.clone());
        }
        return Ok(());
    }
    if let Some(foreign) = existing.iter().find(|i| !ours(i)) {
        return Err(NetError::Mismatch(format!(
            "network.images.{}: Glance has an image {} of that name that is not novabmc's and \
             holds other content; rename one of them",
            spec.name, foreign.id
        )));
    }
    // An image of ours left without data by a stopped upload takes it now.
    let id = match existing
        .iter()
        .find(|i| i.status == "queued" && i.os_hash_value.is_none())
    {
        Some(i) => i.id.clone(),
        None => {
            let mut body = json!({"name": spec.name, "disk_format": spec.disk_format,
                "container_format": "bare", "visibility": "private",
                "tags": run.marks.tags()});
            if let Some(f) = firmware {
                body["hw_firmware_type"] = json!(f);
            }
            let v = run
                .cloud
                .change(
                    &format!("create image {}", spec.name),
                    Call::post(Api::Image, &["images"], body),
                    stand_in("image", &spec.name),
                )
                .await?;
            v["id"].as_str().unwrap_or_default().to_string()
        }
    };
    let mut upload = Call::put(Api::Image, &["images", &id, "file"], None);
    upload.data = Some(data);
    run.cloud
        .change(
            &format!("upload {} to image {}", spec.file.display(), spec.name),
            upload,
            Value::Null,
        )
        .await?;
    run.report.made("images", what, id.clone());
    for stale in existing.iter().filter(|i| i.id != id) {
        run.cloud
            .change(
                &format!("delete the older image {} ({})", spec.name, stale.id),
                Call::delete(Api::Image, &["images", &stale.id]),
                Value::Null,
            )
            .await?;
    }
    Ok(())
}
