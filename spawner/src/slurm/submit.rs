//! The helper's Slurm verbs: submit a server as its owner, and cancel it.
//!
//! **Submission runs `sbatch` as the owner**: the helper forks, drops to the owner's
//! uid, gid and groups exactly as `start` does (`child::become_user`, then
//! `PR_SET_NO_NEW_PRIVS`), and execs sbatch with a clean environment. We do not use
//! root's `sbatch --uid/--gid`: as the owner, munge authenticates the owner, so Slurm's
//! own rules (partition `AllowGroups`, account associations, limits) apply to the job
//! exactly as to one the owner typed, and no mistake here can make slurmctld run
//! anything as root. The batch script comes on sbatch's stdin (see `script`).
//!
//! **Secrets.** A local server reads its TLS material on stdin. A batch job has no stdin
//! the hub can write to, so the helper hands it over through a file:
//! `<bootstrap_dir>/<owner>/<server>.<random>`, where `bootstrap_dir` is root-owned and
//! not writable by others (so nobody can swap the per-owner directory), the per-owner
//! directory is the owner's, mode 0700 (so only the owner and root can read or unlink
//! in it), and the file is created with `O_EXCL|O_NOFOLLOW`, mode 0600, then given to
//! the owner. The job script, running as the owner, opens the file as its stdin and
//! unlinks it before it execs the server, so the secret is on disk only while the job
//! is pending, and the server reads it exactly as a local one does. A cancel removes
//! it; a job that starts after its file was removed exits at once (code 111). With
//! compute nodes other than the submit host, `bootstrap_dir` must be on a filesystem
//! they mount (as home directories are); a site that cannot offer one should instead
//! let the server fetch its bootstrap from the hub with a one-time token.

use crate::child::become_user;
use crate::error::SpawnError;
use crate::helper::Helper;
use crate::slurm::config::{SlurmClusterConfig, SlurmProfile};
use crate::slurm::queue::{job_id_ok, job_name};
use crate::slurm::run::{controller_unreachable, run_bounded, slurm_message, RunError};
use crate::slurm::script::{job_script, sbatch_args, ScriptSpec};
use nix::unistd::User;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use steward_protocol::helper::{HelperReply, SlurmSubmitRequest, StartRequest};

/// Environment names that steer Slurm's own clients: never passed to sbatch, whatever
/// `env_allow` says (an `SBATCH_PARTITION` would override the profile).
fn steers_slurm(name: &str) -> bool {
    [
        "SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SCANCEL_",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn cluster<'a>(h: &'a Helper, name: &str) -> Result<&'a SlurmClusterConfig, SpawnError> {
    crate::request::cluster_ok(&h.config, name)?;
    h.config
        .slurm
        .get(name)
        .ok_or_else(|| SpawnError::BadRequest(format!("unknown Slurm cluster {name:?}")))
}

/// A Slurm client from the cluster's root-owned `bin_dir`, with a clean environment.
fn client(c: &SlurmClusterConfig, program: &str) -> Result<Command, SpawnError> {
    let path = c.bin_dir.join(program);
    crate::config::ensure_root_owned(&path)?;
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/");
    if let Some(conf) = &c.conf {
        cmd.env("SLURM_CONF", conf);
    }
    Ok(cmd)
}

/// Makes `cmd` run as `user`, set up in the forked child before exec.
fn as_user(cmd: &mut Command, user: &User) {
    let user = user.clone();
    // The helper is single-threaded when it forks: run_bounded starts its reader
    // threads only after spawn.
    crate::sys::before_exec(cmd, move || {
        become_user(&user).map_err(|(stage, e)| std::io::Error::other(format!("{stage}: {e}")))?;
        crate::sys::set_no_new_privs().map_err(std::io::Error::from)
    });
}

/// Maps a failed Slurm client run to an error a person can act on.
fn slurm_failure(what: &str, c: &SlurmClusterConfig, e: RunError) -> SpawnError {
    match e {
        RunError::Timeout { .. } => SpawnError::Unavailable(format!(
            "{what} did not answer within {} s: is slurmctld up?",
            c.timeout_secs
        )),
        other => SpawnError::Helper(other.to_string()),
    }
}

fn refusal(what: &str, stderr: &str) -> SpawnError {
    let msg = slurm_message(stderr);
    if controller_unreachable(&msg) {
        SpawnError::Unavailable(format!("{what}: {msg}"))
    } else {
        SpawnError::Refused(format!("{what}: {msg}"))
    }
}

pub fn submit(h: &Helper, req: SlurmSubmitRequest) -> Result<HelperReply, SpawnError> {
    h.check_names(&req.user, &req.server)?;
    let user = h.user(&req.user)?;
    let c = cluster(h, &req.cluster)?;
    let exe = h.executable(&req.executable)?;
    let as_start = StartRequest {
        user: req.user.clone(),
        server: req.server.clone(),
        executable: req.executable.clone(),
        args: req.args.clone(),
        env: req.env.clone(),
        stdin: None,
        profile: req.profile.clone(),
    };
    let profile = h.profile(&as_start, &user)?;
    if req
        .stdin
        .as_ref()
        .is_some_and(|s| s.len() as u64 > crate::helper::MAX_REQUEST_BYTES)
    {
        return Err(SpawnError::TooLarge("stdin payload".into()));
    }
    let name = job_name(&user.name, &req.server);
    // One budget for the whole verb, so the hub's helper timeout can be set from it.
    let deadline = std::time::Instant::now() + Duration::from_secs(c.timeout_secs);
    let timeout = Duration::from_secs(c.timeout_secs);

    // One server per name: a job left by a hub that crashed mid-spawn must be adopted
    // or cancelled, not doubled.
    let mut squeue = client(c, "squeue")?;
    squeue
        .args(["--noheader", "--format=%i", "--user"])
        .arg(&user.name)
        .arg("--name")
        .arg(&name);
    let out = run_bounded(&mut squeue, None, timeout).map_err(|e| slurm_failure("squeue", c, e))?;
    if !out.status.success() {
        return Err(refusal("squeue", &out.stderr));
    }
    let existing: Vec<&str> = out.stdout.split_whitespace().collect();
    if !existing.is_empty() {
        return Err(SpawnError::Refused(format!(
            "server {}/{} is already queued as Slurm job {}; cancel or adopt it first",
            user.name,
            req.server,
            existing.join(", ")
        )));
    }

    let bootstrap = match &req.stdin {
        Some(s) => Some(write_bootstrap(
            &c.bootstrap_dir,
            &user,
            &req.server,
            s.as_bytes(),
        )?),
        None => None,
    };
    let script = job_script(&ScriptSpec {
        owner: &user.name,
        server: &req.server,
        executable: &exe,
        args: &req.args,
        bootstrap: bootstrap.as_deref(),
    });
    let no_slurm = SlurmProfile::default();
    let args = sbatch_args(
        &name,
        &user.dir,
        &profile.limits,
        profile.gpus,
        profile.slurm.as_ref().unwrap_or(&no_slurm),
    );
    let result = (|| {
        let mut sbatch = client(c, "sbatch")?;
        sbatch.args(&args);
        for kv in h.environment(&as_start, &user) {
            if let Some((k, v)) = kv.split_once('=') {
                if !steers_slurm(k) {
                    sbatch.env(k, v);
                }
            }
        }
        if let Some(conf) = &c.conf {
            sbatch.env("SLURM_CONF", conf);
        }
        as_user(&mut sbatch, &user);
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let out = run_bounded(&mut sbatch, Some(script.as_bytes()), left)
            .map_err(|e| slurm_failure("sbatch", c, e))?;
        if !out.status.success() {
            return Err(refusal("sbatch refused the job", &out.stderr));
        }
        let id = out
            .stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_string();
        if !job_id_ok(&id) {
            return Err(SpawnError::Helper(format!(
                "sbatch answered {:?}, not a job id",
                out.stdout.trim()
            )));
        }
        Ok(id)
    })();
    match result {
        Ok(job_id) => Ok(HelperReply::SlurmSubmitted {
            cluster: req.cluster,
            job_id,
            job_name: name,
        }),
        Err(e) => {
            // Nothing half-started: no job, so no secrets left waiting for one.
            if let Some(b) = &bootstrap {
                let _ = std::fs::remove_file(b);
            }
            Err(e)
        }
    }
}

pub fn cancel(
    h: &Helper,
    user: &str,
    server: &str,
    cluster_name: &str,
    job_id: &str,
) -> Result<HelperReply, SpawnError> {
    h.check_names(user, server)?;
    let user = h.user(user)?;
    let c = cluster(h, cluster_name)?;
    if !job_id_ok(job_id) {
        return Err(SpawnError::BadRequest(format!(
            "job id {job_id:?}: expected digits (or digits_digits)"
        )));
    }
    let name = job_name(&user.name, server);
    // As the owner, and only a job of this server's name: a wrong id from the hub
    // can never cancel someone else's job, nor another job of the owner's.
    let mut scancel = client(c, "scancel")?;
    scancel
        .arg("--verbose")
        .arg(format!("--name={name}"))
        .arg(job_id);
    as_user(&mut scancel, &user);
    let out = run_bounded(&mut scancel, None, Duration::from_secs(c.timeout_secs));
    remove_bootstrap(&c.bootstrap_dir, &user, server);
    let out = out.map_err(|e| slurm_failure("scancel", c, e))?;
    if out.stderr.contains("No active jobs match") {
        return Err(SpawnError::NotFound(format!(
            "no active Slurm job {job_id} named {name} (it ended, or is not this server's)"
        )));
    }
    if !out.status.success() {
        let msg = slurm_message(&out.stderr);
        if msg.contains("Invalid job id") {
            return Err(SpawnError::NotFound(format!("scancel: {msg}")));
        }
        return Err(refusal("scancel", &out.stderr));
    }
    Ok(HelperReply::SlurmCancelled {
        job_id: job_id.to_string(),
    })
}

/// The owner's 0700 directory under the root-owned `root`, created if missing.
fn owner_dir(root: &Path, user: &User) -> Result<PathBuf, SpawnError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(root)
        .map_err(|e| SpawnError::io(format!("creating {}", root.display()), e))?;
    crate::config::ensure_root_owned(root)?;
    let dir = root.join(&user.name);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .map_err(|e| SpawnError::sys(format!("chown {}", dir.display()), e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SpawnError::io(format!("creating {}", dir.display()), e)),
    }
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| SpawnError::io(format!("checking {}", dir.display()), e))?;
    if !meta.is_dir() || meta.uid() != user.uid.as_raw() || meta.mode() & 0o077 != 0 {
        return Err(SpawnError::Unsafe {
            path: dir,
            why: format!(
                "must be a directory owned by {} with mode 0700 (found uid {}, mode {:o})",
                user.name,
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(dir)
}

fn write_bootstrap(
    root: &Path,
    user: &User,
    server: &str,
    content: &[u8],
) -> Result<PathBuf, SpawnError> {
    let dir = owner_dir(root, user)?;
    let path = dir.join(format!("{server}.{:016x}", rand::random::<u64>()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| SpawnError::io(format!("creating {}", path.display()), e))?;
    nix::unistd::fchown(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        Some(user.uid),
        Some(user.gid),
    )
    .map_err(|e| SpawnError::sys(format!("chown {}", path.display()), e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| f.write_all(content))
        .map_err(|e| {
            let _ = std::fs::remove_file(&path);
            SpawnError::io(format!("writing {}", path.display()), e)
        })?;
    Ok(path)
}

/// Removes every bootstrap file of this server (unlink never follows a symlink).
fn remove_bootstrap(root: &Path, user: &User, server: &str) {
    let prefix = format!("{server}.");
    let dir = root.join(&user.name);
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
