//! cgroup v1 and v2, behind one small interface.
//!
//! Servers are tracked by cgroup, not by PID: a server's cgroup is
//! `<root>/<prefix>/<user>/<server>` (once per v1 controller), the per-user parent caps
//! the sum of that user's servers, and stopping a server means emptying its cgroup,
//! which catches daemons that double-forked away from the PID we started.

use crate::config::{CgroupConfig, IoLimit, Limits};
use crate::error::SpawnError;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// v1 controllers Steward uses; `freezer` is needed to kill a cgroup atomically on v1.
pub const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "pids", "blkio", "freezer"];
/// v2 controllers Steward enables where the kernel offers them.
pub const V2_CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "io"];

const CPU_PERIOD_US: u64 = 100_000;

/// Name of the per-user cgroup that holds workflow schedulers and their jobs.
pub const WORKFLOWS_CGROUP: &str = "workflows";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct Cgroups {
    pub version: Version,
    root: PathBuf,
    prefix: String,
    /// v1: controllers mounted under `root`; v2: controllers listed in `cgroup.controllers`.
    controllers: Vec<String>,
}

fn write_file(path: &Path, value: &str) -> Result<(), SpawnError> {
    std::fs::write(path, value)
        .map_err(|e| SpawnError::cgroup(path, format!("writing {value:?}: {e}")))
}

fn read_file(path: &Path) -> Result<String, SpawnError> {
    std::fs::read_to_string(path).map_err(|e| SpawnError::cgroup(path, format!("reading: {e}")))
}

impl Cgroups {
    /// Detects the hierarchy: v2 when `<root>/cgroup.controllers` exists, else v1.
    pub fn detect(cfg: &CgroupConfig) -> Result<Cgroups, SpawnError> {
        let unified = cfg.root.join("cgroup.controllers").exists();
        let version = match cfg.version.as_str() {
            "v1" => Version::V1,
            "v2" => Version::V2,
            _ if unified => Version::V2,
            _ => Version::V1,
        };
        let controllers = match version {
            Version::V2 => {
                let text = read_file(&cfg.root.join("cgroup.controllers"))?;
                text.split_whitespace()
                    .filter(|c| V2_CONTROLLERS.contains(c))
                    .map(str::to_string)
                    .collect()
            }
            Version::V1 => {
                let found: Vec<String> = V1_CONTROLLERS
                    .iter()
                    .filter(|c| cfg.root.join(c).join("cgroup.procs").exists())
                    .map(|c| c.to_string())
                    .collect();
                for required in ["pids", "freezer"] {
                    if !found.iter().any(|c| c == required) {
                        return Err(SpawnError::cgroup(
                            &cfg.root,
                            format!("cgroup v1 controller {required:?} is not mounted; Steward needs it to track and kill servers"),
                        ));
                    }
                }
                found
            }
        };
        Ok(Cgroups {
            version,
            root: cfg.root.clone(),
            prefix: cfg.prefix.clone(),
            controllers,
        })
    }

    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// `prefix/user/server` (or `prefix/user` when `server` is None).
    pub fn relative(&self, user: &str, server: Option<&str>) -> PathBuf {
        let mut p = PathBuf::from(&self.prefix).join(user);
        if let Some(s) = server {
            p.push(s);
        }
        p
    }

    /// Every directory that makes up one logical cgroup (one per v1 controller).
    fn dirs(&self, rel: &Path) -> Vec<(Option<&str>, PathBuf)> {
        match self.version {
            Version::V2 => vec![(None, self.root.join(rel))],
            Version::V1 => self
                .controllers
                .iter()
                .map(|c| (Some(c.as_str()), self.root.join(c).join(rel)))
                .collect(),
        }
    }

    /// The directory whose `cgroup.procs` is the authority on membership.
    fn tracking_dir(&self, rel: &Path) -> PathBuf {
        match self.version {
            Version::V2 => self.root.join(rel),
            Version::V1 => self.root.join("pids").join(rel),
        }
    }

    /// The path shown to people and stored by the hub.
    pub fn display(&self, user: &str, server: &str) -> String {
        self.tracking_dir(&self.relative(user, Some(server)))
            .display()
            .to_string()
    }

    /// Creates the per-user parent and the server's cgroup and applies both limits.
    pub fn create(
        &self,
        user: &str,
        server: &str,
        user_limits: &Limits,
        limits: &Limits,
    ) -> Result<(), SpawnError> {
        let user_rel = self.relative(user, None);
        let server_rel = self.relative(user, Some(server));
        if self.version == Version::V2 {
            // v2 only lets a cgroup use a controller its parent delegated.
            let enable: String = self
                .controllers
                .iter()
                .map(|c| format!("+{c} "))
                .collect::<String>();
            let enable = enable.trim_end();
            let prefix_dir = self.root.join(&self.prefix);
            std::fs::create_dir_all(&prefix_dir)
                .map_err(|e| SpawnError::cgroup(&prefix_dir, format!("creating: {e}")))?;
            if !enable.is_empty() {
                write_file(&self.root.join("cgroup.subtree_control"), enable)?;
                write_file(&prefix_dir.join("cgroup.subtree_control"), enable)?;
            }
            let user_dir = self.root.join(&user_rel);
            std::fs::create_dir_all(&user_dir)
                .map_err(|e| SpawnError::cgroup(&user_dir, format!("creating: {e}")))?;
            if !enable.is_empty() {
                write_file(&user_dir.join("cgroup.subtree_control"), enable)?;
            }
        }
        for (_, dir) in self.dirs(&server_rel) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| SpawnError::cgroup(&dir, format!("creating: {e}")))?;
        }
        self.apply_limits(&user_rel, user_limits)?;
        self.apply_limits(&server_rel, limits)
    }

    fn apply_limits(&self, rel: &Path, limits: &Limits) -> Result<(), SpawnError> {
        match self.version {
            Version::V1 => {
                let dir = |c: &str| self.root.join(c).join(rel);
                if let Some(mem) = limits.memory {
                    self.require("memory", limits)?;
                    write_file(
                        &dir("memory").join("memory.limit_in_bytes"),
                        &mem.to_string(),
                    )?;
                }
                if let Some(cpu) = limits.cpu {
                    self.require("cpu", limits)?;
                    let quota = ((cpu * CPU_PERIOD_US as f64).round() as u64).max(1000);
                    write_file(
                        &dir("cpu").join("cpu.cfs_period_us"),
                        &CPU_PERIOD_US.to_string(),
                    )?;
                    write_file(&dir("cpu").join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let Some(pids) = limits.pids {
                    write_file(&dir("pids").join("pids.max"), &pids.to_string())?;
                }
                for io in &limits.io {
                    self.require("blkio", limits)?;
                    let dev = device_numbers(io)?;
                    if let Some(r) = io.read_bps {
                        write_file(
                            &dir("blkio").join("blkio.throttle.read_bps_device"),
                            &format!("{dev} {r}"),
                        )?;
                    }
                    if let Some(w) = io.write_bps {
                        write_file(
                            &dir("blkio").join("blkio.throttle.write_bps_device"),
                            &format!("{dev} {w}"),
                        )?;
                    }
                }
            }
            Version::V2 => {
                let dir = self.root.join(rel);
                if let Some(mem) = limits.memory {
                    self.require("memory", limits)?;
                    write_file(&dir.join("memory.max"), &mem.to_string())?;
                    // Without swap limits a "limited" server could page out forever.
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let Some(cpu) = limits.cpu {
                    self.require("cpu", limits)?;
                    let quota = ((cpu * CPU_PERIOD_US as f64).round() as u64).max(1000);
                    write_file(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(pids) = limits.pids {
                    self.require("pids", limits)?;
                    write_file(&dir.join("pids.max"), &pids.to_string())?;
                }
                for io in &limits.io {
                    self.require("io", limits)?;
                    let dev = device_numbers(io)?;
                    let mut line = dev;
                    if let Some(r) = io.read_bps {
                        line.push_str(&format!(" rbps={r}"));
                    }
                    if let Some(w) = io.write_bps {
                        line.push_str(&format!(" wbps={w}"));
                    }
                    write_file(&dir.join("io.max"), &line)?;
                }
            }
        }
        Ok(())
    }

    fn require(&self, controller: &str, limits: &Limits) -> Result<(), SpawnError> {
        if self.has(controller) {
            Ok(())
        } else {
            Err(SpawnError::cgroup(
                &self.root,
                format!("the {controller} controller is not available here, but a profile sets a limit that needs it ({limits:?}); remove the limit or enable the controller"),
            ))
        }
    }

    /// Creates `<prefix>/<user>/workflows` (once per hierarchy) and lets the user move
    /// their own processes into it, so the schedulers a server starts can leave the
    /// server's cgroup: stopping or culling the server then kills the server and not the
    /// workflows, which stay under the user's parent cgroup and its caps. Returns the
    /// directories (their `cgroup.procs` is what the user writes).
    pub fn delegate_workflows(
        &self,
        user: &str,
        uid: u32,
        gid: u32,
    ) -> Result<Vec<PathBuf>, SpawnError> {
        let rel = self.relative(user, Some(WORKFLOWS_CGROUP));
        let mut dirs = vec![];
        for (_, dir) in self.dirs(&rel) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| SpawnError::cgroup(&dir, format!("creating: {e}")))?;
            let mut files = vec![dir.join("cgroup.procs")];
            match self.version {
                // v1 also lists threads in `tasks`; a process moves with all of them.
                Version::V1 => files.push(dir.join("tasks")),
                // v2 checks write access on the common ancestor of source and target too.
                Version::V2 => files.push(
                    self.root
                        .join(self.relative(user, None))
                        .join("cgroup.procs"),
                ),
            }
            for f in files {
                if f.exists() {
                    nix::unistd::chown(
                        &f,
                        Some(nix::unistd::Uid::from_raw(uid)),
                        Some(nix::unistd::Gid::from_raw(gid)),
                    )
                    .map_err(|e| SpawnError::cgroup(&f, format!("delegating to {user}: {e}")))?;
                }
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Moves `pid` into the server's cgroup in every hierarchy.
    pub fn join(&self, user: &str, server: &str, pid: u32) -> Result<(), SpawnError> {
        let rel = self.relative(user, Some(server));
        for (_, dir) in self.dirs(&rel) {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn exists(&self, user: &str, server: &str) -> bool {
        self.tracking_dir(&self.relative(user, Some(server)))
            .is_dir()
    }

    /// Pids now in the server's cgroup (empty if it does not exist).
    pub fn procs(&self, user: &str, server: &str) -> Result<Vec<u32>, SpawnError> {
        let path = self
            .tracking_dir(&self.relative(user, Some(server)))
            .join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(SpawnError::cgroup(path, format!("reading: {e}"))),
        }
    }

    /// Whether the kernel OOM-killed anything in the server's cgroup.
    pub fn oom_killed(&self, user: &str, server: &str) -> bool {
        let rel = self.relative(user, Some(server));
        let (file, key) = match self.version {
            Version::V1 => (
                self.root
                    .join("memory")
                    .join(&rel)
                    .join("memory.oom_control"),
                "oom_kill",
            ),
            Version::V2 => (self.root.join(&rel).join("memory.events"), "oom_kill"),
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let mut parts = l.split_whitespace();
                    (parts.next() == Some(key)).then(|| parts.next()?.parse::<u64>().ok())?
                })
            })
            .is_some_and(|n| n > 0)
    }

    /// Kills every process in the cgroup and waits (bounded) until it is empty.
    /// Returns how many processes were signalled.
    pub fn kill_all(&self, user: &str, server: &str, timeout: Duration) -> Result<u32, SpawnError> {
        let rel = self.relative(user, Some(server));
        let deadline = Instant::now() + timeout;
        let mut signalled = 0u32;
        match self.version {
            Version::V2 => {
                let dir = self.root.join(&rel);
                signalled = self.procs(user, server)?.len() as u32;
                let kill_file = dir.join("cgroup.kill");
                if kill_file.exists() {
                    write_file(&kill_file, "1")?;
                } else {
                    // Kernels before 5.14: freeze so nothing can fork, then kill each.
                    let _ = std::fs::write(dir.join("cgroup.freeze"), "1");
                    for pid in self.procs(user, server)? {
                        crate::sys::kill_pid(pid, nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
                }
            }
            Version::V1 => {
                let freezer = self.root.join("freezer").join(&rel).join("freezer.state");
                loop {
                    let pids = self.procs(user, server)?;
                    if pids.is_empty() {
                        break;
                    }
                    // Frozen tasks cannot fork, so a fork bomb cannot outrun the kill loop;
                    // SIGKILL is delivered when they thaw.
                    write_file(&freezer, "FROZEN")?;
                    let freeze_deadline = Instant::now() + Duration::from_millis(500);
                    while Instant::now() < freeze_deadline {
                        if read_file(&freezer)?.trim() == "FROZEN" {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    for pid in self.procs(user, server)? {
                        crate::sys::kill_pid(pid, nix::sys::signal::Signal::SIGKILL);
                        signalled += 1;
                    }
                    write_file(&freezer, "THAWED")?;
                    if Instant::now() > deadline {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        while Instant::now() < deadline {
            if self.procs(user, server)?.is_empty() {
                return Ok(signalled);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.procs(user, server)?;
        if left.is_empty() {
            Ok(signalled)
        } else {
            Err(SpawnError::cgroup(
                self.tracking_dir(&rel),
                format!("{} process(es) survived the kill: {left:?}", left.len()),
            ))
        }
    }

    /// Removes the server's (empty) cgroup, and the user's parent when it has no other servers.
    pub fn remove(&self, user: &str, server: &str) -> Result<bool, SpawnError> {
        let rel = self.relative(user, Some(server));
        for (_, dir) in self.dirs(&rel) {
            match remove_cgroup_dir(&dir, self.version) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpawnError::cgroup(&dir, format!("removing: {e}"))),
            }
        }
        let user_rel = self.relative(user, None);
        for (_, dir) in self.dirs(&user_rel) {
            if has_child_dirs(&dir) {
                continue;
            }
            let _ = remove_cgroup_dir(&dir, self.version);
        }
        Ok(true)
    }

    /// Every `(user, server)` that has a cgroup under the prefix.
    pub fn list(&self) -> Vec<(String, String)> {
        let base = self.tracking_dir(Path::new(&self.prefix));
        let mut out = vec![];
        let Ok(users) = std::fs::read_dir(&base) else {
            return out;
        };
        for u in users.flatten() {
            if !u.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(servers) = std::fs::read_dir(u.path()) else {
                continue;
            };
            for s in servers.flatten() {
                if s.file_type().is_ok_and(|t| t.is_dir()) && s.file_name() != WORKFLOWS_CGROUP {
                    out.push((
                        u.file_name().to_string_lossy().into_owned(),
                        s.file_name().to_string_lossy().into_owned(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

fn has_child_dirs(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        })
        .unwrap_or(false)
}

/// cgroupfs directories are removed with a plain rmdir even though they list files; a
/// directory that only mimics cgroupfs (tests) holds real files that must go first.
fn remove_cgroup_dir(dir: &Path, _version: Version) -> std::io::Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
        Err(e) => {
            if is_cgroupfs(dir) {
                return Err(e);
            }
            for entry in std::fs::read_dir(dir)?.flatten() {
                if entry.file_type()?.is_file() {
                    std::fs::remove_file(entry.path())?;
                }
            }
            std::fs::remove_dir(dir)
        }
    }
}

fn is_cgroupfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| {
            let t = s.filesystem_type();
            t == nix::sys::statfs::CGROUP_SUPER_MAGIC || t == nix::sys::statfs::CGROUP2_SUPER_MAGIC
        })
        .unwrap_or(false)
}

fn device_numbers(io: &IoLimit) -> Result<String, SpawnError> {
    let meta = std::fs::metadata(&io.device)
        .map_err(|e| SpawnError::io(format!("io limit device {}", io.device.display()), e))?;
    if !meta.file_type().is_block_device() {
        return Err(SpawnError::BadRequest(format!(
            "io limit device {} is not a block device",
            io.device.display()
        )));
    }
    let rdev = meta.rdev();
    Ok(format!("{}:{}", libc::major(rdev), libc::minor(rdev)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory laid out like a v2 cgroupfs root.
    fn fake_v2() -> (tempfile::TempDir, Cgroups) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma\n",
        )
        .unwrap();
        let cfg = CgroupConfig {
            version: "auto".into(),
            root: dir.path().to_path_buf(),
            prefix: "steward".into(),
        };
        let cg = Cgroups::detect(&cfg).unwrap();
        (dir, cg)
    }

    #[test]
    fn v2_is_detected_and_limits_are_written() {
        let (dir, cg) = fake_v2();
        assert_eq!(cg.version, Version::V2);
        assert_eq!(cg.controllers(), ["cpu", "io", "memory", "pids"]);
        let user = Limits {
            memory: Some(4 << 30),
            cpu: Some(2.0),
            pids: Some(1000),
            io: vec![],
        };
        let server = Limits {
            memory: Some(512 << 20),
            cpu: Some(0.5),
            pids: Some(64),
            io: vec![],
        };
        cg.create("alice", "default", &user, &server).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "+cpu +io +memory +pids");
        assert_eq!(
            read("steward/alice/cgroup.subtree_control"),
            "+cpu +io +memory +pids"
        );
        assert_eq!(read("steward/alice/memory.max"), (4u64 << 30).to_string());
        assert_eq!(read("steward/alice/cpu.max"), "200000 100000");
        assert_eq!(
            read("steward/alice/default/memory.max"),
            (512u64 << 20).to_string()
        );
        assert_eq!(read("steward/alice/default/cpu.max"), "50000 100000");
        assert_eq!(read("steward/alice/default/pids.max"), "64");
        assert_eq!(read("steward/alice/default/memory.swap.max"), "0");

        cg.join("alice", "default", 4242).unwrap();
        assert_eq!(cg.procs("alice", "default").unwrap(), vec![4242]);
        assert_eq!(
            cg.list(),
            vec![("alice".to_string(), "default".to_string())]
        );
        assert!(cg
            .display("alice", "default")
            .ends_with("steward/alice/default"));

        std::fs::write(
            dir.path().join("steward/alice/default/memory.events"),
            "low 0\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed("alice", "default"));

        // An empty fake cgroup "kills" instantly through cgroup.kill.
        std::fs::write(dir.path().join("steward/alice/default/cgroup.procs"), "").unwrap();
        std::fs::write(dir.path().join("steward/alice/default/cgroup.kill"), "").unwrap();
        assert_eq!(
            cg.kill_all("alice", "default", Duration::from_millis(100))
                .unwrap(),
            0
        );
        assert_eq!(read("steward/alice/default/cgroup.kill"), "1");
        assert!(cg.remove("alice", "default").unwrap());
        assert!(!dir.path().join("steward/alice").exists());
    }

    #[test]
    fn v2_missing_controller_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        let cfg = CgroupConfig {
            version: "v2".into(),
            root: dir.path().into(),
            prefix: "steward".into(),
        };
        let cg = Cgroups::detect(&cfg).unwrap();
        let limits = Limits {
            memory: Some(1 << 20),
            ..Default::default()
        };
        let e = cg
            .create("bob", "default", &Limits::default(), &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory controller is not available"), "{e}");
    }

    #[test]
    fn v1_without_freezer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pids")).unwrap();
        std::fs::write(dir.path().join("pids/cgroup.procs"), "").unwrap();
        let cfg = CgroupConfig {
            version: "auto".into(),
            root: dir.path().into(),
            prefix: "steward".into(),
        };
        let e = Cgroups::detect(&cfg).unwrap_err().to_string();
        assert!(e.contains("freezer"), "{e}");
    }
}
