//! The Glance images virtual media made, shared by every node of the
//! backend: an image is reused by the next insert of the same URL whose
//! server still gives the same validator (ETag, else Last-Modified), kept
//! while any node has it inserted, and deleted once unused beyond the
//! newest `keep_unused`. An image fetched from a URL without validators is
//! never reused (nothing says the next fetch would give the same bytes)
//! and goes as soon as no node uses it.
//!
//! Each image carries the tag `novabmc-media-<key>` (the key is a hash of
//! the URL and validator) so that a restart finds a load it interrupted,
//! and the index is kept in the state directory (`media/cache.json`).

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::super::store::Store;

/// The tag every virtual-media image carries.
pub const MEDIA_TAG: &str = "novabmc-media";

/// One image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedImage {
    /// Hash of URL and validator.
    pub key: String,
    /// The URL it was fetched from.
    pub url: String,
    /// Whether the next insert of the URL may reuse it.
    pub reusable: bool,
    /// Glance image ID.
    pub image: String,
    /// The nodes that have it inserted.
    pub users: BTreeSet<String>,
    /// When the last user let it go (ms since the epoch).
    pub unused_since_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    images: Vec<CachedImage>,
}

/// The index, under a lock.
#[derive(Debug)]
pub struct Cache {
    index: Mutex<Index>,
    keep_unused: usize,
}

/// The cache key of a URL with the validator its server gave.
pub fn key_of(url: &str, validator: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update(b"\n");
    h.update(validator.unwrap_or("").as_bytes());
    hex::encode(&h.finalize()[..10])
}

/// The tag naming one key's image.
pub fn key_tag(key: &str) -> String {
    format!("{MEDIA_TAG}-{key}")
}

impl Cache {
    /// The index kept in `store`, or an empty one.
    pub fn load(store: &Store, keep_unused: usize) -> Self {
        let index = store
            .read_side_file("media", "cache.json")
            .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
            .unwrap_or_default();
        Cache {
            index: Mutex::new(index),
            keep_unused,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, store: &Store, index: &Index) {
        match serde_json::to_vec_pretty(index) {
            Ok(bytes) => {
                if let Err(e) = store.save_side_file("media", "cache.json", &bytes) {
                    tracing::warn!(error = %e, "cannot save the virtual media cache index; a restart may fetch images again");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode the virtual media cache index"),
        }
    }

    /// A reusable image for `key`, taken for `node`.
    pub fn take(&self, store: &Store, key: &str, node: &str) -> Option<String> {
        let mut index = self.lock();
        let hit = index
            .images
            .iter_mut()
            .find(|i| i.key == key && i.reusable)?;
        hit.users.insert(node.to_string());
        let image = hit.image.clone();
        self.save(store, &index);
        Some(image)
    }

    /// Forgets an image Glance no longer has.
    pub fn forget(&self, store: &Store, image: &str) {
        let mut index = self.lock();
        index.images.retain(|i| i.image != image);
        self.save(store, &index);
    }

    /// Adds a freshly loaded image, used by `node`.
    pub fn add(&self, store: &Store, entry: CachedImage) {
        let mut index = self.lock();
        index.images.retain(|i| i.image != entry.image);
        index.images.push(entry);
        self.save(store, &index);
    }

    /// `node` no longer uses `image`: returns the images to delete now (no
    /// user, not reusable, or beyond the newest `keep_unused` unused ones).
    pub fn release(&self, store: &Store, image: &str, node: &str, now_ms: u64) -> Vec<String> {
        let mut index = self.lock();
        for i in index.images.iter_mut().filter(|i| i.image == image) {
            if i.users.remove(node) && i.users.is_empty() {
                i.unused_since_ms = now_ms;
            }
        }
        let mut unused: Vec<&CachedImage> =
            index.images.iter().filter(|i| i.users.is_empty()).collect();
        unused.sort_by_key(|i| std::cmp::Reverse(i.unused_since_ms));
        let mut kept = 0;
        let mut drop = Vec::new();
        for i in unused {
            if i.reusable && kept < self.keep_unused {
                kept += 1;
            } else {
                drop.push(i.image.clone());
            }
        }
        index.images.retain(|i| !drop.contains(&i.image));
        self.save(store, &index);
        drop
    }

    /// Every image known, for `check` and tests.
    pub fn images(&self) -> Vec<CachedImage> {
        self.lock().images.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(image: &str, node: &str, reusable: bool) -> CachedImage {
        CachedImage {
            key: key_of(image, Some("v")),
            url: format!("http://h/{image}"),
            reusable,
            image: image.into(),
            users: [node.to_string()].into(),
            unused_since_ms: 0,
        }
    }

    #[test]
    fn unused_images_are_kept_up_to_the_limit_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("store");
        let cache = Cache::load(&store, 1);
        cache.add(&store, entry("a", "n0", true));
        cache.add(&store, entry("b", "n1", true));
        cache.add(&store, entry("c", "n1", false));
        assert!(cache.release(&store, "a", "n0", 1).is_empty(), "kept");
        assert_eq!(
            cache.take(&store, &key_of("a", Some("v")), "n2").as_deref(),
            Some("a")
        );
        assert_eq!(
            cache.release(&store, "c", "n1", 2),
            vec!["c".to_string()],
            "not reusable: deleted once unused"
        );
        assert!(cache.release(&store, "a", "n2", 3).is_empty());
        assert_eq!(
            cache.release(&store, "b", "n1", 4),
            vec!["a".to_string()],
            "one unused kept: the newest"
        );
        let again = Cache::load(&store, 1);
        assert_eq!(again.images().len(), 1, "the index survives a restart");
        assert_eq!(key_of("u", None), key_of("u", Some("")));
    }
}
