//! The hub's copy of the site policy: the last good one, swapped atomically.
//!
//! Decisions take an `Arc<SitePolicy>` snapshot ([`PolicyStore::current`]) and keep
//! it for as long as they run, so a reload never changes a decision half way. A file
//! with any error never replaces the good policy: `load`/`reload` return the
//! diagnostics and the store keeps answering with what it had. Each successful load
//! reports the file's SHA-256 so the audit log can say exactly which policy decided.
//!
//! `std::sync::RwLock<Arc<_>>` rather than the `arc-swap` crate: the lock is held only
//! to clone or replace one `Arc` (nanoseconds), reloads are rare, and it saves a
//! dependency in the hub.

use crate::diag::{Diagnostic, Diagnostics, Pos};
use crate::site::SitePolicy;
use sha2::{Digest, Sha256};
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Largest policy file the store will read (10,000 entries is well under 1 MiB).
const MAX_POLICY_BYTES: u64 = 16 * 1024 * 1024;

/// How strict loading is about the file itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Refuse a site file not owned by root or writable by group/other. On by
    /// default; only `steward demo` (everything unprivileged on one machine) and tests
    /// turn it off.
    pub require_root_owned: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            require_root_owned: true,
        }
    }
}

/// What a successful load did, for the hub's log and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// Number of `[owners."o"."u"]` entries now in force.
    pub entries: usize,
    pub warnings: Vec<Diagnostic>,
    /// False when the new file is byte-for-byte the policy already in force.
    pub changed: bool,
    /// Read + parse + compile + swap (not the freeing of the policy it replaced).
    #[serde(with = "micros")]
    pub elapsed: Duration,
}

mod micros {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }
}

/// Holds the policy in force.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<SitePolicy>>,
    source: Mutex<Option<(PathBuf, String)>>,
    options: StoreOptions,
}

impl Default for PolicyStore {
    fn default() -> Self {
        Self::new(StoreOptions::default())
    }
}

impl PolicyStore {
    /// A store holding the empty policy (nobody but owners may do anything) until
    /// the first successful [`load`](Self::load).
    pub fn new(options: StoreOptions) -> Self {
        PolicyStore {
            current: RwLock::new(Arc::new(SitePolicy::empty("(no site policy loaded)"))),
            source: Mutex::new(None),
            options,
        }
    }

    /// Read, check and compile `path`; on success it becomes the policy in force and
    /// the path to reload. On failure nothing changes.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<ReloadReport, Diagnostics> {
        let start = Instant::now();
        let path = path.as_ref();
        let (src, sha) = read_policy_file(path, self.options.require_root_owned)?;
        let policy = SitePolicy::parse(&src, &path.display().to_string())?;
        let entries = policy.len();
        let warnings = policy.warnings().to_vec();
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        let changed = source
            .as_ref()
            .is_none_or(|(p, s)| p.as_path() != path || *s != sha);
        let new = Arc::new(policy);
        // Swap under the lock, free the old policy after releasing it: freeing
        // 10,000 entries takes milliseconds, and decisions taking a snapshot
        // (`current`) must not wait for that.
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            new,
        );
        *source = Some((path.to_path_buf(), sha.clone()));
        drop(source);
        let elapsed = start.elapsed();
        drop(old);
        Ok(ReloadReport {
            path: path.to_path_buf(),
            sha256: sha,
            entries,
            warnings,
            changed,
            elapsed,
        })
    }

    /// Load the last loaded path again (e.g. on SIGHUP).
    pub fn reload(&self) -> Result<ReloadReport, Diagnostics> {
        let path = self
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(p, _)| p.clone());
        match path {
            Some(p) => self.load(p),
            None => Err(Diagnostic::error(
                "(policy store)",
                Pos::FILE,
                "no site policy has been loaded yet, so there is nothing to reload",
            )
            .into()),
        }
    }

    /// The policy in force. Keep the `Arc` for the whole decision.
    pub fn current(&self) -> Arc<SitePolicy> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Path and SHA-256 of the policy in force, if one was loaded.
    pub fn source(&self) -> Option<(PathBuf, String)> {
        self.source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The site file must be root's alone: owned by uid 0 and not writable by group or
/// others. Otherwise anyone who can write it can grant themselves everything.
pub fn site_file_permission_problem(path: &Path, meta: &Metadata) -> Option<Diagnostic> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    let file = path.display().to_string();
    if meta.uid() != 0 {
        return Some(Diagnostic::error(
            &file,
            Pos::FILE,
            format!(
                "the site policy must be owned by root, but its owner is uid {}; run `chown root:root {file}`",
                meta.uid()
            ),
        ));
    }
    if mode & 0o022 != 0 {
        return Some(Diagnostic::error(
            &file,
            Pos::FILE,
            format!(
                "the site policy is writable by {} (mode {mode:04o}); only root may write it: run `chmod go-w {file}`",
                match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "its group and everyone",
                    (true, false) => "its group",
                    _ => "everyone",
                }
            ),
        ));
    }
    None
}

/// Read a policy file as UTF-8 with its SHA-256, checking ownership on the open file
/// handle (not the path) so the checked file is the read file.
pub(crate) fn read_policy_file(
    path: &Path,
    require_root_owned: bool,
) -> Result<(String, String), Diagnostics> {
    let file = path.display().to_string();
    let io_err = |what: &str, e: std::io::Error| -> Diagnostics {
        Diagnostic::error(&file, Pos::FILE, format!("cannot {what}: {e}")).into()
    };
    let mut f = File::open(path).map_err(|e| io_err("open", e))?;
    let meta = f.metadata().map_err(|e| io_err("stat", e))?;
    if !meta.is_file() {
        return Err(Diagnostic::error(&file, Pos::FILE, "not a regular file").into());
    }
    if require_root_owned {
        if let Some(d) = site_file_permission_problem(path, &meta) {
            return Err(d.into());
        }
    }
    if meta.len() > MAX_POLICY_BYTES {
        return Err(Diagnostic::error(
            &file,
            Pos::FILE,
            format!(
                "file is {} bytes; a policy file may be at most {MAX_POLICY_BYTES}",
                meta.len()
            ),
        )
        .into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.read_to_end(&mut bytes).map_err(|e| io_err("read", e))?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let src = String::from_utf8(bytes).map_err(|e| -> Diagnostics {
        let off = e.utf8_error().valid_up_to();
        let src = String::from_utf8_lossy(&e.as_bytes()[..off]).into_owned();
        let pos = crate::diag::LineIndex::new(&src).pos(off);
        Diagnostic::error(&file, pos, "not valid UTF-8 (TOML files must be UTF-8)").into()
    })?;
    Ok((src, sha))
}
