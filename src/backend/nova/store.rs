//! The state directory: what has been acknowledged and not yet carried
//! out, kept so that a restart, a SIGKILL or a crash loses nothing.
//!
//! One small JSON file per node with pending work (`nodes/<node>.json`):
//! the desired power state and its flags, and boot options not yet saved in
//! the server's metadata. A file is written when its node's record changes
//! and removed when the work is done, so an idle BMC has an empty
//! directory, and an operator can read what is pending with `cat`.
//!
//! Why files and not an embedded database: every node's record stands
//! alone (no write ever spans two nodes), so what a store must give is an
//! atomic replace of one small value, which write-to-temporary-then-rename
//! gives on every POSIX file system: a reader sees the old file or the new
//! one, never a torn one. The write and rename are done before the command
//! is answered, so once a console has its acknowledgement the record is in
//! the kernel and survives the process being killed; the file and the
//! directory are then `fsync`ed off the caller's thread (on the runtime's
//! blocking pool, every file written since the last flush and the
//! directory once), which makes it survive a power loss too. A flush is
//! not waited for: on a real disk it takes milliseconds, and the node that
//! wrote the file is answering its console meanwhile.
//!
//! A lock file (`lock`, held with `flock` for the process's life) keeps a
//! second novabmc process out of the same directory: two daemons sharing
//! one would each resume the other's work.
//!
//! What is in the directory is trusted no further than need be: the
//! directory must belong to the user novabmc runs as and not be writable
//! by others (records hold no secret, so reading is not refused); no
//! symbolic link is followed (the lock, a record or a temporary file); a
//! record is applied only to the node its file is named after; and a file
//! that cannot be used is moved aside (`<name>.corrupt-<unix time>`) for
//! an operator to look at, where no later save can overwrite it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::error;

/// The directory a default installation uses (the systemd unit's
/// `StateDirectory=novabmc`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/novabmc";

/// Version of the file format.
const VERSION: u32 = 1;

/// The state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the lock.
    #[error(
        "state directory {dir} is in use by another novabmc process{holder}; \
         give each process its own with backend.state_dir"
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// " (pid N)" when the lock file says.
        holder: String,
    },
    /// The directory or a file in it cannot be created, read or written.
    #[error("state directory {dir}: {what}: {error}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What was being done.
        what: String,
        /// Why it failed (in the message, not a separate cause, so it
        /// is printed once).
        error: std::io::Error,
    },
    /// The directory's owner or mode would let another user change what
    /// this process resumes.
    #[error(
        "state directory {dir}: {why}; it must belong to the user novabmc runs as and \
         not be writable by other users (chown it, chmod 0700)"
    )]
    Unsafe {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The store was closed (its backend stopped for a reload or the
    /// shutdown): nothing more is written through it.
    #[error("state directory {dir} is closed: its backend has stopped")]
    Closed {
        /// The directory.
        dir: PathBuf,
    },
    /// Pending work could not be carried to a new state directory.
    #[error(
        "cannot carry pending work from {from} to {to}: {why}; \
         keeping the running configuration"
    )]
    CarryOver {
        /// The directory in use.
        from: PathBuf,
        /// The new one.
        to: PathBuf,
        /// Why.
        why: String,
    },
}

/// A pending power operation as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPower {
    /// `true` for on.
    pub on: bool,
    /// A boot is due before "on" counts.
    pub reboot: bool,
    /// `"now"` or `"after_boot"` for a pending NMI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nmi: Option<String>,
    /// When a command last changed it, in milliseconds since the Unix
    /// epoch.
    pub changed_unix_ms: u64,
}

/// One node's file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version.
    pub version: u32,
    /// The node (its name in the configuration).
    pub node: String,
    /// The server's UUID, when it was known: a record is never applied to
    /// another server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The pending power operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<StoredPower>,
    /// Boot options not yet saved in the server's metadata (the metadata
    /// encoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// Boot-parameter writes accepted before the server was resolved, to
    /// be laid over its boot options once they are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_boot: Option<String>,
    /// Inserted virtual media.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<super::media::record::Slot>,
    /// Virtual media left to remove from the cloud.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media_cleanup: Vec<super::media::record::Cleanup>,
}

impl Entry {
    /// An entry for `node` with nothing pending.
    pub fn new(node: &str, server: Option<String>) -> Self {
        Entry {
            version: VERSION,
            node: node.to_string(),
            server,
            power: None,
            boot: None,
            early_boot: None,
            media: Vec::new(),
            media_cleanup: Vec::new(),
        }
    }

    /// Whether nothing is pending (the file can go).
    pub fn is_empty(&self) -> bool {
        self.power.is_none()
            && self.boot.is_none()
            && self.early_boot.is_none()
            && self.media.is_empty()
            && self.media_cleanup.is_empty()
    }
}

/// An open state directory, locked for this process.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    nodes: PathBuf,
    /// Held until [`Store::close`] (or the store is dropped): the lock is
    /// the open descriptor. `None` once closed.
    lock: Mutex<Option<File>>,
    /// Files written and not yet flushed to disk.
    flush: Arc<Flush>,
}

/// What is waiting to be flushed, shared with the flush running on the
/// blocking pool.
#[derive(Debug, Default)]
struct Flush {
    /// The `nodes` directory.
    nodes: PathBuf,
    /// Files written (or removed) since the last flush took its list.
    dirty: Mutex<BTreeSet<PathBuf>>,
    /// A flush is scheduled or running; the next write need not schedule
    /// another (it takes whatever is dirty when it starts).
    scheduled: AtomicBool,
    /// Flushes completed (read by the tests).
    done: AtomicU64,
}

impl Store {
    /// Creates (mode 0700) and locks `dir`. Fails if another process holds
    /// it.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| StoreError::Io {
                dir: dir.to_path_buf(),
                what,
                error: source,
            }
        };
        let nodes = dir.join("nodes");
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&nodes)
                .map_err(io("cannot create it"))?;
        }
        check_safe(dir, &nodes)?;
        let lock_path = dir.join("lock");
        let mut lock = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
                .map_err(|e| no_follow(e, &lock_path))
                .map_err(io("cannot open its lock file"))?
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let pid = pid.trim();
                return Err(StoreError::InUse {
                    dir: dir.to_path_buf(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock it")(e)),
        }
        lock.set_len(0)
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(io("cannot write its lock file"))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            flush: Arc::new(Flush {
                nodes: nodes.clone(),
                ..Flush::default()
            }),
            nodes,
            lock: Mutex::new(Some(lock)),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, node: &str) -> PathBuf {
        self.nodes.join(format!("{}.json", file_name(node)))
    }

    /// Every stored entry, by node name. Unreadable files are reported
    /// (and left for an operator to look at) rather than fatal.
    pub fn load(&self) -> (BTreeMap<String, Entry>, Vec<String>) {
        let mut entries = BTreeMap::new();
        let mut problems = Vec::new();
        let list = match std::fs::read_dir(&self.nodes) {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("cannot list {}: {e}", self.nodes.display()));
                return (entries, problems);
            }
        };
        for item in list.flatten() {
            let path = item.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let parsed = read_no_follow(&path)
                .map_err(|e| no_follow(e, &path).to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()));
            let problem = match parsed {
                Ok(e) if e.version != VERSION => {
                    format!("format version {} is not {VERSION}", e.version)
                }
                Ok(e) if self.path(&e.node) != path => format!(
                    "it is a record of node {:?}, not of the node its name says",
                    e.node
                ),
                Ok(e) => {
                    entries.insert(e.node.clone(), e);
                    continue;
                }
                Err(e) => format!("unreadable: {e}"),
            };
            problems.push(format!(
                "{}: {problem}; ignored, {}",
                path.display(),
                move_aside(&path)
            ));
        }
        (entries, problems)
    }

    /// Writes (or, when empty, removes) a node's entry: atomically, and
    /// visible to the next process as soon as this returns. Durability
    /// against power loss follows: the file and the directory are flushed
    /// on the runtime's blocking pool (inline when there is no runtime).
    pub fn save(&self, entry: &Entry) -> Result<(), StoreError> {
        if self.is_closed() {
            return Err(StoreError::Closed {
                dir: self.dir.clone(),
            });
        }
        let result = self.write(entry);
        self.schedule_flush(self.path(&entry.node));
        result
    }

    /// Releases the directory's lock, so that the next backend of this
    /// process (a reload) can open it whatever still holds this one (a
    /// console opened through the old backend, a call in flight): from
    /// here on [`Store::save`] refuses.
    pub fn close(&self) {
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn is_closed(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// A node's saved SOL settings (`sol/<node>`, hexadecimal), if any
    /// and readable.
    pub fn sol_settings(&self, node: &str) -> Option<Vec<u8>> {
        let text = self.read_side_file("sol", &file_name(node))?;
        hex::decode(String::from_utf8_lossy(&text).trim()).ok()
    }

    /// Saves a node's SOL settings, atomically as the records are. Kept
    /// apart from `nodes/` since they are settings, not pending work.
    pub fn save_sol_settings(&self, node: &str, settings: &[u8]) -> Result<(), StoreError> {
        let text = format!("{}\n", hex::encode(settings));
        self.save_side_file("sol", &file_name(node), text.as_bytes())
    }

    /// A file of a subdirectory other than `nodes/` (read without
    /// following a symlink), if it exists and is readable.
    pub fn read_side_file(&self, subdir: &str, name: &str) -> Option<Vec<u8>> {
        read_no_follow(&self.dir.join(subdir).join(name)).ok()
    }

    /// Writes a file of a subdirectory other than `nodes/` (created mode
    /// 0700): atomically, never through a symlink, flushed as the records
    /// are.
    pub fn save_side_file(&self, subdir: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.is_closed() {
            return Err(StoreError::Closed {
                dir: self.dir.clone(),
            });
        }
        let sub = self.dir.join(subdir);
        let io = |what: String| {
            move |source| StoreError::Io {
                dir: self.dir.clone(),
                what,
                error: source,
            }
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sub)
                .map_err(io(format!("cannot create {}", sub.display())))?;
        }
        let path = sub.join(name);
        let tmp = sub.join(format!("{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .and_then(|mut f| f.write_all(bytes))
                .map_err(io(format!("cannot write {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(format!("cannot rename {}", tmp.display())))?;
        self.schedule_flush(path);
        Ok(())
    }

    /// Flushes completed since the store was opened.
    #[cfg(test)]
    fn flushes(&self) -> u64 {
        self.flush.done.load(Ordering::Acquire)
    }

    /// Files written and not yet taken by a flush.
    #[cfg(test)]
    fn unflushed(&self) -> usize {
        self.flush
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn schedule_flush(&self, path: PathBuf) {
        self.flush
            .dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path);
        if self.flush.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let flush = self.flush.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || flush.run());
            }
            Err(_) => flush.run(),
        }
    }

    fn write(&self, entry: &Entry) -> Result<(), StoreError> {
        let path = self.path(&entry.node);
        let io = |what: String| {
            move |source| StoreError::Io {
                dir: self.dir.clone(),
                what,
                error: source,
            }
        };
        if entry.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(io(format!("cannot remove {}", path.display()))(e))
                }
                _ => Ok(()),
            };
        }
        let text = serde_json::to_vec_pretty(entry).map_err(|e| StoreError::Io {
            dir: self.dir.clone(),
            what: format!("cannot encode the entry of node {}", entry.node),
            error: std::io::Error::other(e),
        })?;
        let tmp = path.with_extension("json.tmp");
        // Created afresh (O_EXCL, which follows no link), so that nothing
        // left at that name is written through; the rename then replaces
        // the record itself, never what a link there points to.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("cannot remove {}", tmp.display()))(e));
            }
            _ => {}
        }
        {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .and_then(|mut f| f.write_all(&text))
                .map_err(io(format!("cannot write {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(format!("cannot rename {}", tmp.display())))
    }
}

impl Flush {
    /// Flushes every dirty file and then the directory, until nothing is
    /// dirty; failures are logged with the file (the entries stay written,
    /// only their durability against power loss is in doubt).
    fn run(&self) {
        loop {
            let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
            for path in &dirty {
                match File::open(path).and_then(|f| f.sync_all()) {
                    Ok(()) => {}
                    // Removed: the directory's flush makes that durable.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => error!(file = %path.display(), error = %e,
                        "cannot flush pending work to disk; it would not survive a power loss"),
                }
            }
            if let Err(e) = File::open(&self.nodes).and_then(|d| d.sync_all()) {
                error!(dir = %self.nodes.display(), error = %e,
                    "cannot flush the state directory to disk; pending work would not survive a power loss");
            }
            self.done.fetch_add(1, Ordering::AcqRel);
            self.scheduled.store(false, Ordering::Release);
            // A write that found the flag still set left its file for
            // this flush: take it, unless another flush already has.
            let more = !self
                .dirty
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if !more || self.scheduled.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

/// Refuses a directory (or its `nodes`) that another user owns or may
/// write to, or a `nodes` that is a symbolic link.
fn check_safe(dir: &Path, nodes: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let unsafe_ = |why: String| StoreError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    };
    // The effective user: /proc/self belongs to it (no unsafe call
    // needed). Without /proc, only the mode is checked.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    for (path, follow) in [(dir, true), (nodes, false)] {
        let meta = if follow {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        }
        .map_err(|e| unsafe_(format!("cannot read {}: {e}", path.display())))?;
        if !meta.is_dir() {
            return Err(unsafe_(format!(
                "{} is not a directory (a symbolic link is not followed)",
                path.display()
            )));
        }
        if let Some(me) = me
            && meta.uid() != me
        {
            return Err(unsafe_(format!(
                "{} belongs to uid {}, not to uid {me} that novabmc runs as",
                path.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_(format!(
                "{} (mode {:04o}) is writable by other users",
                path.display(),
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
}

/// Reads a file without following a symbolic link at its name.
fn read_no_follow(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Says so when an open failed on a symbolic link (`O_NOFOLLOW`).
fn no_follow(e: std::io::Error, path: &Path) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::other(format!(
            "{} is a symbolic link; refusing to follow it",
            path.display()
        ))
    } else {
        e
    }
}

/// Renames a record that cannot be used out of the way of later saves;
/// says where it went (or why it stayed).
fn move_aside(path: &Path) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{secs}"));
    let aside = PathBuf::from(aside);
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("moved aside to {}", aside.display()),
        Err(e) => format!("left in place (cannot move it aside: {e})"),
    }
}

/// Moves the pending work of the state directory `from` (not open by
/// anyone: its backend has stopped) into `to`, for a reload that changes
/// `backend.state_dir`: every `nodes/*.json` file is moved, none is
/// dropped. Refused, with nothing moved, when `to` already holds a record
/// for a node `from` has one for (which to keep is for an operator to
/// say). Returns how many records were moved.
pub fn carry_over(from: &Path, to: &Path) -> Result<usize, StoreError> {
    let refuse = |why: String| StoreError::CarryOver {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        why,
    };
    let (old_nodes, new_nodes) = (from.join("nodes"), to.join("nodes"));
    let list = match std::fs::read_dir(&old_nodes) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(refuse(format!("cannot list {}: {e}", old_nodes.display()))),
    };
    let files: Vec<PathBuf> = list
        .flatten()
        .map(|i| i.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    if files.is_empty() {
        return Ok(0);
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&new_nodes)
            .map_err(|e| refuse(format!("cannot create {}: {e}", new_nodes.display())))?;
    }
    let targets: Vec<(PathBuf, PathBuf)> = files
        .into_iter()
        .filter_map(|f| {
            let name = f.file_name()?.to_owned();
            Some((f, new_nodes.join(name)))
        })
        .collect();
    if let Some((_, clash)) = targets.iter().find(|(_, t)| t.exists()) {
        return Err(refuse(format!(
            "{} already holds pending work for the same node",
            clash.display()
        )));
    }
    for (i, (src, dst)) in targets.iter().enumerate() {
        let moved = std::fs::rename(src, dst).or_else(|_| {
            // Another file system: copy, flush, then remove the original.
            std::fs::copy(src, dst)
                .and_then(|_| File::open(dst).and_then(|f| f.sync_all()))
                .and_then(|()| std::fs::remove_file(src))
        });
        if let Err(e) = moved {
            return Err(refuse(format!(
                "moving {} failed after {i} records were moved: {e}",
                src.display()
            )));
        }
    }
    for dir in [&new_nodes, &old_nodes] {
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            error!(dir = %dir.display(), error = %e, "cannot flush the state directory to disk");
        }
    }
    Ok(targets.len())
}

/// A node name as a file name: letters, digits, `-`, `_` and `.` kept,
/// everything else (and a leading dot) as `%XX`.
fn file_name(node: &str) -> String {
    let mut out = String::with_capacity(node.len());
    for (i, b) in node.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_empty_ones_are_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let mut e = Entry::new("rack/1", Some("uuid-1".into()));
        e.power = Some(StoredPower {
            on: true,
            reboot: false,
            nmi: None,
            changed_unix_ms: 42,
        });
        store.save(&e).expect("save");
        // Without a runtime the flush ran inline.
        assert_eq!(store.flushes(), 1);
        assert_eq!(store.unflushed(), 0);
        assert!(dir.path().join("nodes/rack%2F1.json").exists());
        let (loaded, problems) = store.load();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(loaded.get("rack/1"), Some(&e));
        e.power = None;
        store.save(&e).expect("remove");
        assert!(store.load().0.is_empty());
    }

    /// On a runtime the caller does not wait for the disk: the flush runs
    /// on the blocking pool, and one flush takes every file written while
    /// it was scheduled.
    #[tokio::test]
    async fn writes_are_flushed_to_disk_off_the_callers_thread() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        for i in 0..50 {
            let mut e = Entry::new(&format!("node-{i}"), None);
            e.power = Some(StoredPower {
                on: true,
                reboot: false,
                nmi: None,
                changed_unix_ms: i,
            });
            store.save(&e).expect("save");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while store.unflushed() > 0 || store.flush.scheduled.load(Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let flushes = store.flushes();
        assert!((1..=50).contains(&flushes), "{flushes} flushes");
        assert_eq!(store.load().0.len(), 50);
    }

    #[test]
    fn a_second_process_is_refused_naming_the_directory_and_key() {
        let dir = tempfile::tempdir().expect("dir");
        let _first = Store::open(dir.path()).expect("open");
        let e = Store::open(dir.path()).expect_err("locked").to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        assert!(e.contains("backend.state_dir"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    }

    #[test]
    fn unreadable_files_are_reported_not_fatal() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        std::fs::write(dir.path().join("nodes/x.json"), "{not json").expect("write");
        let (entries, problems) = store.load();
        assert!(entries.is_empty());
        assert!(problems[0].contains("x.json"), "{problems:?}");
    }

    #[test]
    fn a_closed_store_frees_the_lock_and_refuses_writes() {
        let dir = tempfile::tempdir().expect("dir");
        let first = Store::open(dir.path()).expect("open");
        first.close();
        let second = Store::open(dir.path()).expect("reopened after close");
        let e = first.save(&Entry::new("n", None)).expect_err("closed");
        assert!(matches!(e, StoreError::Closed { .. }), "{e}");
        second
            .save(&Entry::new("n", None))
            .expect("the new one writes");
    }

    #[test]
    fn pending_work_is_carried_to_a_new_directory_or_refused() {
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        let mut e = Entry::new("n1", None);
        e.boot = Some("x".into());
        {
            let s = Store::open(a.path()).expect("open");
            s.save(&e).expect("save");
            s.close();
        }
        assert_eq!(carry_over(a.path(), b.path()).expect("carried"), 1);
        let s = Store::open(b.path()).expect("open b");
        assert_eq!(s.load().0.get("n1"), Some(&e));
        s.close();
        // Back again, with a clash in the way: refused, nothing moved.
        {
            let s = Store::open(a.path()).expect("open a");
            s.save(&e).expect("save");
        }
        let err = carry_over(b.path(), a.path()).expect_err("clash");
        assert!(err.to_string().contains("n1.json"), "{err}");
        assert!(b.path().join("nodes/n1.json").exists());
    }

    #[test]
    fn a_lock_symlink_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("dir");
        let victim = dir.path().join("precious");
        std::fs::write(&victim, "keep me").expect("victim");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state");
        std::os::unix::fs::symlink(&victim, state.join("lock")).expect("symlink");
        let e = Store::open(&state).expect_err("a symlink is not followed");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep me");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_clearly() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let e = Store::open(dir.path())
            .expect_err("world-writable")
            .to_string();
        assert!(
            e.contains("writable by other users") && e.contains("chmod 0700"),
            "{e}"
        );
    }

    #[test]
    fn a_record_naming_another_node_and_a_corrupt_file_are_moved_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(dir.path()).expect("open");
        let mut e = Entry::new("node-0", None);
        e.boot = Some("x".into());
        let text = serde_json::to_vec(&e).expect("json");
        std::fs::write(dir.path().join("nodes/node-1.json"), &text).expect("write");
        std::fs::write(dir.path().join("nodes/node-2.json"), "{not json").expect("write");
        let (entries, problems) = store.load();
        assert!(entries.is_empty(), "{entries:?}");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("node-1.json") && p.contains("node-0")),
            "{problems:?}"
        );
        // Moved aside, where the next save of those nodes does not reach.
        store.save(&Entry::new("node-2", None)).expect("save");
        let names: Vec<String> = std::fs::read_dir(dir.path().join("nodes"))
            .expect("list")
            .flatten()
            .map(|i| i.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.contains(".corrupt-")), "{names:?}");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("compute-0"), "compute-0");
        assert_eq!(file_name("../x"), "%2E.%2Fx");
        assert_eq!(file_name("a b"), "a%20b");
    }
}
