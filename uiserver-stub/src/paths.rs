//! Where an owner's workflows live on disk.
//!
//! ```text
//! ~/.steward/workflows/<wf>/flow.toml            definition (owner-written)
//! ~/.steward/run/<wf>/state.json                 scheduler state, written atomically
//! ~/.steward/run/<wf>/scheduler.sock             scheduler socket (0600)
//! ~/.steward/run/<wf>/scheduler.lock             held (flock) while a scheduler runs
//! ~/.steward/run/<wf>/log/scheduler/log          scheduler log
//! ~/.steward/run/<wf>/log/job/<cycle>/<task>/<NN>/job.{out,err,status}
//! ~/.steward/run/<wf>/work/<cycle>/<task>/       job working directory
//! ```
//! Every name that reaches a path here has been validated by `steward_protocol`'s id
//! grammar (no `/`-less tricks, no `.`/`..`), so joining is safe; reading logs still
//! canonicalises and refuses anything outside the run directory (see `logs`).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    home: PathBuf,
}

impl Layout {
    pub fn new(home: impl Into<PathBuf>) -> Layout {
        Layout { home: home.into() }
    }

    /// `$HOME`, or the password database entry of the current user.
    pub fn from_env() -> anyhow::Result<Layout> {
        if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return Ok(Layout::new(h));
        }
        let uid = nix::unistd::getuid();
        match nix::unistd::User::from_uid(uid)? {
            Some(u) => Ok(Layout::new(u.dir)),
            None => anyhow::bail!("HOME is not set and uid {uid} has no passwd entry"),
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }
    pub fn steward_dir(&self) -> PathBuf {
        self.home.join(".steward")
    }
    pub fn workflows_dir(&self) -> PathBuf {
        self.steward_dir().join("workflows")
    }
    pub fn flow_file(&self, wf: &str) -> PathBuf {
        self.workflows_dir().join(wf).join("flow.toml")
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.steward_dir().join("run")
    }
    pub fn run_dir(&self, wf: &str) -> PathBuf {
        self.runs_dir().join(wf)
    }
    pub fn socket(&self, wf: &str) -> PathBuf {
        self.run_dir(wf).join("scheduler.sock")
    }
    pub fn lock_file(&self, wf: &str) -> PathBuf {
        self.run_dir(wf).join("scheduler.lock")
    }
    pub fn state_file(&self, wf: &str) -> PathBuf {
        self.run_dir(wf).join("state.json")
    }
    pub fn scheduler_log(&self, wf: &str) -> PathBuf {
        self.run_dir(wf).join("log").join("scheduler").join("log")
    }
    pub fn job_log_root(&self, wf: &str) -> PathBuf {
        self.run_dir(wf).join("log").join("job")
    }
    /// Directory of one job: `log/job/<cycle>/<task>/<NN>`.
    pub fn job_dir(&self, wf: &str, cycle: &str, task: &str, submit: u32) -> PathBuf {
        self.job_log_root(wf)
            .join(cycle)
            .join(task)
            .join(job_dir_name(submit))
    }
    /// Relative to the run dir, as logs report it.
    pub fn job_rel(cycle: &str, task: &str, submit: u32, file: &str) -> PathBuf {
        Path::new("log")
            .join("job")
            .join(cycle)
            .join(task)
            .join(job_dir_name(submit))
            .join(file)
    }
    pub fn work_dir(&self, wf: &str, cycle: &str, task: &str) -> PathBuf {
        self.run_dir(wf).join("work").join(cycle).join(task)
    }
}

/// `01`, `02`, ... (Cylc's submit-number directories).
pub fn job_dir_name(submit: u32) -> String {
    format!("{submit:02}")
}

/// Creates `dir` and its parents with mode 0700 (the owner's run data is private).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync'd,
/// then renamed over the target, so readers see the old or the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Names of all workflows under `~/.steward/workflows` (a directory holding a
/// `flow.toml`; nested names like `group/run1` up to 3 levels deep).
pub fn scan_workflows(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    walk(&layout.workflows_dir(), "", 0, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if steward_protocol::ids::validate_workflow_name(&full).is_err() {
            continue;
        }
        if e.path().join("flow.toml").is_file() {
            out.push(full);
        } else if depth < 2 {
            walk(&e.path(), &full, depth + 1, out);
        }
    }
}
