//! Virtual media on Nova: a CD that boots by rescue, removable media that
//! reach the server as volumes.
//!
//! Nova has no CD tray. An inserted image is fetched into Glance (by
//! Glance itself with the interoperable import's `web-download` when the
//! cloud offers it, else streamed by novabmc into an upload, see
//! [`source`]), and cached by URL and validator ([`cache`]). A boot from
//! the CD is a rescue with that image (stable-device rescue: the image
//! carries `hw_rescue_device=cdrom` and `hw_rescue_bus`, so the root disk
//! stays attached; microversion 2.87 where the cloud has it, which a
//! volume-backed server needs), or a rebuild with it when configured; the
//! next boot from disk unrescues (the worker's [`super::plan`]). A USB
//! stick or floppy becomes a Cinder volume created from the image and
//! attached to the server; eject detaches and deletes it.
//!
//! Each node has one media task beside its worker. An insert records the
//! slot (state directory) and wakes the task, which loads it; an eject
//! removes the slot and leaves a [`record::Cleanup`], which the task
//! carries out. Both are in the node's record, so a restart resumes a load
//! or a cleanup rather than losing it. A boot waits while any of the
//! node's media is loading, as a machine powered on right after a USB
//! stick went in sees the stick.

pub mod cache;
pub mod record;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::{NewImage, NovaClient, NovaError};
use super::compute::Compute;
use super::node::Resolution;
use super::worker::{NodeCell, WorkerContext, backoff, unix_ms};
use crate::backend::virtual_media::{MediaDevice, image_name_of};
use cache::{CachedImage, MEDIA_TAG, key_of, key_tag};
use record::{Cleanup, Phase, Slot};

/// How a boot from the CD is carried out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MediaBoot {
    /// Rescue with the image (stable-device rescue keeps the disks).
    #[default]
    Rescue,
    /// Rebuild with the image (the root disk is replaced).
    Rebuild,
}

impl MediaBoot {
    /// Parses the configuration value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rescue" => Some(Self::Rescue),
            "rebuild" => Some(Self::Rebuild),
            _ => None,
        }
    }
}

/// Virtual media settings (`[backend.virtual_media]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSettings {
    /// Largest image accepted, in bytes.
    pub max_size: u64,
    /// How long the URL check at insert may take.
    pub probe_timeout: Duration,
    /// How long a whole load (fetch, import, volume, attach) may take.
    pub load_timeout: Duration,
    /// Unused images kept for reuse.
    pub keep_unused: usize,
    /// How a CD boot is done.
    pub boot: MediaBoot,
    /// Let Glance fetch the URL itself when it offers `web-download`.
    pub web_download: bool,
    /// `hw_rescue_bus` of CD images.
    pub rescue_bus: String,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            max_size: 8 << 30,
            probe_timeout: Duration::from_secs(10),
            load_timeout: Duration::from_secs(1800),
            keep_unused: 4,
            boot: MediaBoot::Rescue,
            web_download: true,
            rescue_bus: "sata".into(),
        }
    }
}

/// What every node's media task shares.
#[derive(Debug)]
pub struct MediaContext {
    /// Settings.
    pub settings: MediaSettings,
    /// The images made so far.
    pub cache: cache::Cache,
    /// The compute API's highest microversion, once read.
    pub max_minor: tokio::sync::OnceCell<u16>,
    /// One lock per image key with a load under way: two nodes inserting
    /// the same URL load it once (the second finds the first's image in
    /// the cache), and no load takes another's image for a leftover.
    pub loading: KeyLocks,
}

/// The locks of the image keys being loaded.
pub type KeyLocks =
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

impl MediaContext {
    /// A context with no load under way.
    pub fn new(settings: MediaSettings, cache: cache::Cache) -> Self {
        MediaContext {
            settings,
            cache,
            max_minor: Default::default(),
            loading: Default::default(),
        }
    }

    /// The lock of one image key.
    fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// Forgets a key's lock once no load holds or waits for it.
    fn release_key(&self, key: &str) {
        let mut map = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(key);
        }
    }
}

/// How often a load looks at Glance or Cinder while they work.
const POLL: Duration = Duration::from_millis(500);

/// Volume states in which nothing is under way.
const SETTLED: &[&str] = &["available", "in-use", "error"];

/// The media task of one node.
pub async fn run<C: Compute>(
    cell: Arc<NodeCell>,
    ctx: Arc<WorkerContext<C>>,
    stop: CancellationToken,
) {
    let mut failures = 0;
    let mut cleanup_failed = false;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let work = next_work(&cell, cleanup_failed);
        cleanup_failed = false;
        let progressed = match work {
            Work::Idle => {
                tokio::select! {
                    () = cell.media_wake.notified() => {}
                    () = stop.cancelled() => return,
                }
                continue;
            }
            Work::Cleanup(c) => {
                let done = Box::pin(cleanup(&cell, &ctx, c, &stop)).await;
                cleanup_failed = !done;
                done
            }
            Work::Load(slot) => Box::pin(load(&cell, &ctx, slot, &stop)).await,
        };
        if progressed {
            failures = 0;
        } else {
            failures += 1;
            tokio::select! {
                () = tokio::time::sleep(backoff(failures)) => {}
                () = cell.media_wake.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    }
}

enum Work {
    Idle,
    Cleanup(Cleanup),
    Load(Slot),
}

/// Cleanups first (they free what a new load may need), but after one
/// that failed a load goes first: a cloud refusing a delete must not hold
/// up the media a client is waiting for.
fn next_work(cell: &NodeCell, load_first: bool) -> Work {
    let s = cell.lock();
    let load = s.media.iter().find(|m| m.phase == Phase::Loading);
    if load_first && let Some(m) = load {
        return Work::Load(m.clone());
    }
    if let Some(c) = s.media_cleanup.first() {
        return Work::Cleanup(c.clone());
    }
    match load {
        Some(m) => Work::Load(m.clone()),
        None => Work::Idle,
    }
}

/// The server the node is resolved to.
fn server_of(cell: &NodeCell) -> Option<String> {
    match &cell.lock().resolution {
        Resolution::Found { id } => Some(id.clone()),
        _ => None,
    }
}

fn media_client<C: Compute>(ctx: &WorkerContext<C>) -> Result<&NovaClient, String> {
    ctx.client
        .media_client()
        .ok_or_else(|| "this cloud connection has no image service".to_string())
}

/// Carries out one cleanup; true once it is done (and dropped).
async fn cleanup<C: Compute>(
    cell: &NodeCell,
    ctx: &WorkerContext<C>,
    c: Cleanup,
    stop: &CancellationToken,
) -> bool {
    let name = cell.lock().name.clone();
    let client = match media_client(ctx) {
        Ok(c) => c,
        Err(e) => {
            warn!(node = %name, error = %e, "cannot clean up virtual media");
            drop_cleanup(cell, ctx, &c);
            return true;
        }
    };
    let result: Result<(), NovaError> = async {
        if let Some(volume) = &c.volume {
            // Detached from whatever holds it now (an attach may have
            // completed after the eject was recorded), once it settles.
            wait_volume(client, volume, SETTLED, stop, POLL * 240).await?;
            let mut servers: Vec<String> = client
                .volume_state(volume)
                .await?
                .map(|v| v.attachments.into_iter().map(|a| a.server_id).collect())
                .unwrap_or_default();
            if let Some(s) = &c.server
                && !servers.contains(s)
            {
                servers.push(s.clone());
            }
            for server in &servers {
                client.detach_volume(server, volume).await?;
            }
            if !servers.is_empty() {
                wait_volume(client, volume, &["available", "error"], stop, POLL * 240).await?;
            }
            client.delete_volume(volume).await?;
            info!(node = %name, volume = %volume, "virtual media volume removed");
        }
        if let Some(image) = &c.image {
            for gone in ctx
                .media
                .cache
                .release(&ctx.store, image, &name, unix_ms())
            {
                client.delete_image(&gone).await?;
                info!(node = %name, image = %gone, "virtual media image no longer used; deleted from Glance");
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            drop_cleanup(cell, ctx, &c);
            true
        }
        Err(e) => {
            warn!(node = %name, error = %e, "virtual media cleanup failed; retrying");
            // To the back of the queue: one that cannot be done yet never
            // holds up the others.
            let mut s = cell.lock();
            if let Some(i) = s.media_cleanup.iter().position(|x| *x == c) {
                let item = s.media_cleanup.remove(i);
                s.media_cleanup.push(item);
            }
            false
        }
    }
}

fn drop_cleanup<C>(cell: &NodeCell, ctx: &WorkerContext<C>, c: &Cleanup) {
    let mut s = cell.lock();
    if let Some(i) = s.media_cleanup.iter().position(|x| x == c) {
        s.media_cleanup.remove(i);
    }
    ctx.persist(&s);
}

/// Waits until a volume is in one of `states` (or gone); `error`, unless
/// it is one of them, is a failure.
async fn wait_volume(
    client: &NovaClient,
    volume: &str,
    states: &[&str],
    stop: &CancellationToken,
    within: Duration,
) -> Result<(), NovaError> {
    let until = Instant::now() + within;
    loop {
        match client.volume_state(volume).await? {
            None => return Ok(()),
            Some(v) if states.contains(&v.status.as_str()) => return Ok(()),
            Some(v) if v.status == "error" => {
                return Err(NovaError::permanent(format!(
                    "volume {volume} went to error"
                )));
            }
            Some(_) => {}
        }
        if Instant::now() >= until || stop.is_cancelled() {
            return Err(NovaError::timeout(
                &format!("volume {volume} to become {}", states.join(" or ")),
                within,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `slot` is still the node's current insert on its device.
fn current(cell: &NodeCell, slot: &Slot) -> bool {
    cell.lock()
        .media
        .iter()
        .any(|m| m.device == slot.device && m.generation == slot.generation)
}

/// Updates the current slot (if it still is) and saves the record.
fn update<C>(
    cell: &NodeCell,
    ctx: &WorkerContext<C>,
    slot: &Slot,
    f: impl FnOnce(&mut Slot),
) -> bool {
    let mut s = cell.lock();
    let Some(m) = s
        .media
        .iter_mut()
        .find(|m| m.device == slot.device && m.generation == slot.generation)
    else {
        return false;
    };
    f(m);
    ctx.persist(&s);
    true
}

/// Loads one slot; true when it ended (ready, failed or superseded),
/// false to try again later (the server is not resolved yet).
async fn load<C: Compute>(
    cell: &NodeCell,
    ctx: &WorkerContext<C>,
    slot: Slot,
    stop: &CancellationToken,
) -> bool {
    let name = cell.lock().name.clone();
    let device = slot.device().unwrap_or(MediaDevice::Cd);
    let Some(server) = server_of(cell) else {
        debug!(node = %name, "virtual media waits for the server to be resolved");
        return false;
    };
    if slot.volume.is_some() {
        // A load a restart interrupted after making its volume: that one
        // goes, and this load makes its own.
        let mut s = cell.lock();
        s.media_cleanup.push(Cleanup {
            volume: slot.volume.clone(),
            server: slot.attached.clone(),
            image: None,
        });
        if let Some(m) = s
            .media
            .iter_mut()
            .find(|m| m.device == slot.device && m.generation == slot.generation)
        {
            m.volume = None;
            m.attached = None;
        }
        ctx.persist(&s);
    }
    let started = Instant::now();
    info!(node = %name, device = %device, url = %slot.url, "loading virtual media");
    let within = ctx.media.settings.load_timeout;
    let mut made = Made::default();
    let outcome = tokio::select! {
        r = tokio::time::timeout(within, load_steps(cell, ctx, &slot, device, &server, &name, &mut made)) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("the load took longer than {} s (backend.virtual_media.load_timeout_secs)", within.as_secs())),
        },
        () = stop.cancelled() => {
            // Stopping: the slot stays Loading in the record, and the next
            // start loads it again (its leftovers are found by tag).
            return true;
        }
    };
    let took = started.elapsed();
    let recorder = ctx.client.media_client().map(NovaClient::recorder);
    match outcome {
        Ok(()) if current(cell, &slot) => {
            if let Some(r) = recorder {
                r.media_load("ok", took);
            }
            info!(node = %name, device = %device, url = %slot.url, seconds = format_args!("{:.1}", took.as_secs_f64()), "virtual media ready");
            let mut s = cell.lock();
            // A boot that waited for the media counts its time from now.
            if let Some(d) = s.desired.as_mut() {
                d.changed = Instant::now();
            }
            drop(s);
            cell.wake.notify_one();
        }
        Ok(()) => {
            debug!(node = %name, device = %device, "a load finished for an insert since replaced");
            undo(cell, ctx, &made, &name);
        }
        Err(why) => {
            if let Some(r) = recorder {
                r.media_load("failed", took);
            }
            undo(cell, ctx, &made, &name);
            let failed = update(cell, ctx, &slot, |m| {
                m.phase = Phase::Failed {
                    message: why.clone(),
                };
                m.image = None;
                m.volume = None;
                m.attached = None;
            });
            if failed {
                error!(node = %name, device = %device, url = %slot.url, reason = %why, "virtual media could not be loaded; the device shows it as not inserted");
            }
            cell.wake.notify_one();
        }
    }
    true
}

/// What a load created, to remove if it does not end as the slot's.
#[derive(Default)]
struct Made {
    /// An image this load created or took from the cache.
    image: Option<String>,
    /// A volume it created.
    volume: Option<String>,
    /// The server the volume was attached to.
    attached: Option<String>,
}

fn undo<C>(cell: &NodeCell, ctx: &WorkerContext<C>, made: &Made, name: &str) {
    if made.image.is_none() && made.volume.is_none() {
        return;
    }
    let mut s = cell.lock();
    s.media_cleanup.push(Cleanup {
        volume: made.volume.clone(),
        server: made.attached.clone(),
        image: made.image.clone(),
    });
    ctx.persist(&s);
    drop(s);
    debug!(node = %name, "removing what an unfinished load made");
    cell.media_wake.notify_one();
}

async fn load_steps<C: Compute>(
    cell: &NodeCell,
    ctx: &WorkerContext<C>,
    slot: &Slot,
    device: MediaDevice,
    server: &str,
    name: &str,
    made: &mut Made,
) -> Result<(), String> {
    let client = media_client(ctx)?;
    let settings = &ctx.media.settings;
    let key = key_of(&slot.url, slot.validator.as_deref());
    let reusable = slot.validator.is_some();
    let lock = ctx.media.key_lock(&key);
    let loaded = {
        let _one_at_a_time = lock.lock().await;
        image_for(client, ctx, slot, &key, reusable, name, made).await
    };
    drop(lock);
    ctx.media.release_key(&key);
    let image = loaded?;
    if !update(cell, ctx, slot, |m| m.image = Some(image.clone())) {
        return Ok(());
    }
    if !device.removable() {
        update(cell, ctx, slot, |m| m.phase = Phase::Ready);
        made.image = None;
        return Ok(());
    }
    // Removable media: a volume from the image, attached to the server.
    let size = client
        .image_state(&image)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|i| i.size)
        .unwrap_or(1);
    let gb = size.div_ceil(1 << 30).max(1);
    let volume = client
        .create_volume(&format!("novabmc-{name}-{}", device.id()), &image, gb)
        .await
        .map_err(|e| format!("Cinder refused the volume: {e}"))?;
    made.volume = Some(volume.id.clone());
    if !update(cell, ctx, slot, |m| m.volume = Some(volume.id.clone())) {
        return Ok(());
    }
    let never = CancellationToken::new();
    wait_volume(
        client,
        &volume.id,
        &["available"],
        &never,
        settings.load_timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !current(cell, slot) {
        return Ok(());
    }
    client
        .attach_volume(server, &volume.id)
        .await
        .map_err(|e| format!("Nova refused to attach volume {}: {e}", volume.id))?;
    made.attached = Some(server.to_string());
    wait_volume(
        client,
        &volume.id,
        &["in-use"],
        &never,
        settings.load_timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    let done = update(cell, ctx, slot, |m| {
        m.attached = Some(server.to_string());
        m.phase = Phase::Ready;
    });
    if done {
        *made = Made::default();
    }
    info!(node = %name, device = %device, volume = %volume.id, server = %server, "virtual media attached as a volume");
    Ok(())
}

/// The Glance image holding the slot's URL: a cached one, else a new
/// import. Called under the key's lock.
async fn image_for<C: Compute>(
    client: &NovaClient,
    ctx: &WorkerContext<C>,
    slot: &Slot,
    key: &str,
    reusable: bool,
    name: &str,
    made: &mut Made,
) -> Result<String, String> {
    let mut image = None;
    if reusable && let Some(id) = ctx.media.cache.take(&ctx.store, key, name) {
        made.image = Some(id.clone());
        match client.image_state(&id).await.map_err(|e| e.to_string())? {
            Some(i) if i.status == "active" => {
                info!(node = %name, image = %id, url = %slot.url, "reusing the image already in Glance");
                image = Some(id);
            }
            _ => {
                ctx.media.cache.forget(&ctx.store, &id);
                made.image = None;
            }
        }
    }
    let image = match image {
        Some(i) => i,
        None => {
            let id = import(client, ctx, slot, key, name, made).await?;
            ctx.media.cache.add(
                &ctx.store,
                CachedImage {
                    key: key.to_string(),
                    url: slot.url.clone(),
                    reusable,
                    image: id.clone(),
                    users: [name.to_string()].into(),
                    unused_since_ms: 0,
                },
            );
            id
        }
    };
    Ok(image)
}

/// Gets the URL's bytes into a new Glance image; returns its ID.
async fn import<C: Compute>(
    client: &NovaClient,
    ctx: &WorkerContext<C>,
    slot: &Slot,
    key: &str,
    name: &str,
    made: &mut Made,
) -> Result<String, String> {
    let settings = &ctx.media.settings;
    let tag = key_tag(key);
    // What an interrupted load (a restart) left: an active image is
    // adopted, anything else deleted.
    for leftover in client
        .images_tagged(&tag)
        .await
        .map_err(|e| e.to_string())?
    {
        if leftover.status == "active" {
            info!(node = %name, image = %leftover.id, "adopting the image an interrupted load finished");
            made.image = Some(leftover.id.clone());
            return Ok(leftover.id);
        }
        info!(node = %name, image = %leftover.id, status = %leftover.status, "deleting the image an interrupted load left");
        client
            .delete_image(&leftover.id)
            .await
            .map_err(|e| e.to_string())?;
    }
    let file = image_name_of(&slot.url).unwrap_or_else(|| "media".into());
    let disk_format = if file.to_ascii_lowercase().ends_with(".iso") {
        "iso"
    } else {
        "raw"
    };
    let new = NewImage {
        name: format!("novabmc-media-{file}-{}", &key[..8]),
        disk_format,
        tags: vec![MEDIA_TAG.to_string(), tag.clone()],
        properties: vec![
            ("hw_rescue_device".into(), "cdrom".into()),
            ("hw_rescue_bus".into(), settings.rescue_bus.clone()),
            ("novabmc_source_url".into(), slot.url.clone()),
            ("novabmc_instance".into(), ctx.owner.clone()),
        ],
    };
    let created = client
        .create_image(&new)
        .await
        .map_err(|e| format!("Glance refused to create the image: {e}"))?;
    let id = created.id;
    made.image = Some(id.clone());
    let url = source::check_url(&slot.url).map_err(|e| e.to_string())?;
    let credentials = slot.credentials();
    let mut via_glance = false;
    if settings.web_download && credentials.is_none() {
        let methods = client.import_methods().await.unwrap_or_default();
        if methods.iter().any(|m| m == "web-download") {
            match client.web_download(&id, url.as_str()).await {
                Ok(()) => via_glance = true,
                Err(e) => {
                    warn!(node = %name, image = %id, error = %e, "Glance refused the web-download import; uploading the image instead");
                }
            }
        }
    }
    if via_glance {
        match wait_image(client, &id).await {
            Ok(size) => return checked_size(client, &id, size, settings.max_size).await,
            Err(why) => {
                warn!(node = %name, image = %id, reason = %why, "Glance's web-download failed; uploading the image instead");
            }
        }
    }
    let state = client
        .image_state(&id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("image {id} disappeared from Glance"))?;
    let id = if state.status == "queued" {
        id
    } else {
        // Not uploadable any more (killed): a fresh record.
        client.delete_image(&id).await.map_err(|e| e.to_string())?;
        let again = client
            .create_image(&new)
            .await
            .map_err(|e| format!("Glance refused to create the image: {e}"))?;
        made.image = Some(again.id.clone());
        again.id
    };
    let stream = source::fetch(
        &url,
        credentials.as_ref(),
        settings.probe_timeout,
        settings.max_size,
    )
    .await
    .map_err(|e| format!("Image {}: {e}", slot.url))?;
    client
        .upload_image(
            &id,
            reqwest::Body::wrap_stream(stream),
            settings.load_timeout,
        )
        .await
        .map_err(|e| format!("uploading {} to Glance failed: {e}", slot.url))?;
    let size = wait_image(client, &id).await?;
    checked_size(client, &id, size, settings.max_size).await
}

async fn checked_size(
    client: &NovaClient,
    id: &str,
    size: Option<u64>,
    max: u64,
) -> Result<String, String> {
    match size {
        Some(s) if s > max => {
            let _ = client.delete_image(id).await;
            Err(format!(
                "the image is {s} bytes, more than the {max} allowed (backend.virtual_media.max_size_mib)"
            ))
        }
        _ => Ok(id.to_string()),
    }
}

/// Waits for an image to become active; returns its size. An import that
/// failed leaves it queued with Glance's import lock released.
async fn wait_image(client: &NovaClient, id: &str) -> Result<Option<u64>, String> {
    loop {
        let Some(i) = client.image_state(id).await.map_err(|e| e.to_string())? else {
            return Err(format!("image {id} disappeared from Glance"));
        };
        match i.status.as_str() {
            "active" => return Ok(i.size),
            "killed" | "deleted" | "pending_delete" => {
                return Err(format!("Glance shows image {id} {}", i.status));
            }
            "queued" if !i.import_locked() => {
                return Err(format!(
                    "Glance's import of image {id} failed (back to queued)"
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}
