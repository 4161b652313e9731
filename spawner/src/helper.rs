//! The `steward-spawn` verbs: one request in, one reply out, every rule from the config.

use crate::cgroup::Cgroups;
use crate::child::{self, ChildSpec};
use crate::config::{HelperConfig, Profile};
use crate::error::SpawnError;
use nix::unistd::User;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};
use steward_protocol::helper::{
    HelperErrorCode, HelperReply, HelperRequest, HostStatus, ServerStatus, StartRequest,
};

pub use crate::request::MAX_REQUEST_BYTES;

pub struct Helper {
    pub config: HelperConfig,
    pub cgroups: Cgroups,
    user_pattern: regex::Regex,
}

/// 65534 (`nobody`, the kernel's default overflow uid) and 4294967294 ((uid_t)-2, the
/// old NFS `nfsnobody`).
const OVERFLOW_UIDS: [u32; 2] = [65534, 4_294_967_294];

impl Helper {
    pub fn new(config: HelperConfig) -> Result<Helper, SpawnError> {
        let cgroups = Cgroups::detect(&config.cgroup)?;
        let user_pattern = regex::Regex::new(&config.user_pattern)
            .map_err(|e| SpawnError::Helper(format!("user_pattern: {e}")))?;
        Ok(Helper {
            config,
            cgroups,
            user_pattern,
        })
    }

    /// Runs one request; every failure becomes an error reply, never a panic.
    pub fn handle(&self, req: HelperRequest) -> HelperReply {
        if let Err(e) = crate::request::precheck(&self.config, &self.user_pattern, &req) {
            return error_reply(e);
        }
        let result = match req {
            HelperRequest::Start(s) => self.start(s),
            HelperRequest::Stop {
                user,
                server,
                grace_secs,
            } => self.stop(&user, &server, grace_secs),
            HelperRequest::Status { user, server } => self
                .check_names(&user, &server)
                .and_then(|_| self.status(&user, &server).map(HelperReply::Status)),
            HelperRequest::List => Ok(HelperReply::List {
                servers: self
                    .cgroups
                    .list()
                    .into_iter()
                    .filter_map(|(u, s)| self.status(&u, &s).ok())
                    .collect(),
            }),
            HelperRequest::HostStatus => self.host_status().map(HelperReply::HostStatus),
            HelperRequest::Adopt { user, server, pid } => self.adopt(&user, &server, pid),
            HelperRequest::ReadUserFile {
                user,
                path,
                max_bytes,
            } => self.read_user_file(&user, &path, max_bytes),
            HelperRequest::SlurmSubmit(s) => crate::slurm::submit::submit(self, s),
            HelperRequest::SlurmCancel {
                user,
                server,
                cluster,
                job_id,
            } => crate::slurm::submit::cancel(self, &user, &server, &cluster, &job_id),
        };
        result.unwrap_or_else(error_reply)
    }

    /// Looks the user up and applies the uid floor and name pattern.
    pub(crate) fn user(&self, name: &str) -> Result<User, SpawnError> {
        if !self.user_pattern.is_match(name) {
            return Err(SpawnError::Refused(format!(
                "user name {name:?} does not match the configured pattern"
            )));
        }
        let user = User::from_name(name)
            .map_err(|e| SpawnError::sys(format!("looking up user {name:?}"), e))?
            .ok_or_else(|| SpawnError::NotFound(format!("no such user {name:?}")))?;
        if user.uid.is_root() || user.uid.as_raw() < self.config.min_uid {
            return Err(SpawnError::Refused(format!(
                "user {name:?} has uid {}, below min_uid {}: system accounts never get a server",
                user.uid, self.config.min_uid
            )));
        }
        // `nobody` (the kernel's overflow uid) sits above any min_uid, and NFS maps
        // unknown owners to it: a server as nobody could reach every such file.
        if OVERFLOW_UIDS.contains(&user.uid.as_raw()) {
            return Err(SpawnError::Refused(format!(
                "user {name:?} has uid {}, the overflow uid (nobody): it never gets a server",
                user.uid
            )));
        }
        Ok(user)
    }

    pub(crate) fn check_names(&self, user: &str, server: &str) -> Result<(), SpawnError> {
        self.user(user)?;
        if !crate::request::server_name_ok(server) {
            return Err(SpawnError::BadRequest(format!(
                "server name {server:?}: use letters, digits, '_', '-', '.' (at most 64)"
            )));
        }
        Ok(())
    }

    pub(crate) fn profile(&self, req: &StartRequest, user: &User) -> Result<&Profile, SpawnError> {
        let name = req.profile.as_deref().unwrap_or("default");
        let profile = self.config.profiles.get(name).ok_or_else(|| {
            let known: Vec<_> = self.config.profiles.keys().cloned().collect();
            SpawnError::BadRequest(format!(
                "unknown profile {name:?}; known: {}",
                known.join(", ")
            ))
        })?;
        if profile.allowed.is_empty() {
            return Ok(profile);
        }
        let groups = user_group_names(user);
        let ok = profile
            .allowed
            .iter()
            .any(|k| match k.strip_prefix("group:") {
                Some(g) => groups.iter().any(|x| x == g),
                None => k == &user.name,
            });
        if ok {
            Ok(profile)
        } else {
            Err(SpawnError::Refused(format!(
                "user {:?} may not use profile {name:?}",
                user.name
            )))
        }
    }

    pub(crate) fn environment(&self, req: &StartRequest, user: &User) -> Vec<String> {
        let mut env: BTreeMap<String, String> = req
            .env
            .iter()
            .filter(|(k, _)| self.config.env_allowed(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.insert("HOME".into(), user.dir.to_string_lossy().into_owned());
        env.insert("USER".into(), user.name.clone());
        env.insert("LOGNAME".into(), user.name.clone());
        env.insert("SHELL".into(), user.shell.to_string_lossy().into_owned());
        env.insert("PATH".into(), self.config.path.clone());
        env.insert("STEWARD_SERVER_NAME".into(), req.server.clone());
        env.into_iter()
            .filter(|(k, v)| !k.contains('\0') && !v.contains('\0'))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    fn open_log(&self, user: &User, server: &str) -> Result<std::fs::File, SpawnError> {
        let dir = self.config.log_dir.join(&user.name);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)
            .map_err(|e| SpawnError::io(format!("creating log directory {}", dir.display()), e))?;
        let path = dir.join(format!("{server}.log"));
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| SpawnError::io(format!("opening server log {}", path.display()), e))
    }

    fn start(&self, req: StartRequest) -> Result<HelperReply, SpawnError> {
        self.check_names(&req.user, &req.server)?;
        let user = self.user(&req.user)?;
        let exe = self.executable(&req.executable)?;
        let profile = self.profile(&req, &user)?;
        if req
            .stdin
            .as_ref()
            .is_some_and(|s| s.len() as u64 > MAX_REQUEST_BYTES)
        {
            return Err(SpawnError::TooLarge("stdin payload".into()));
        }
        let running = self.cgroups.procs(&user.name, &req.server)?;
        if req.server == crate::cgroup::WORKFLOWS_CGROUP {
            return Err(SpawnError::BadRequest(format!(
                "server name {:?} is reserved",
                req.server
            )));
        }
        if !running.is_empty() {
            return Err(SpawnError::Refused(format!(
                "server {}/{} is already running (pids {running:?}); stop or adopt it first",
                user.name, req.server
            )));
        }
        self.cgroups.create(
            &user.name,
            &req.server,
            &self.config.user_limits,
            &profile.limits,
        )?;
        let log = self.open_log(&user, &req.server)?;
        if let Some(root) = &self.config.runtime_dir {
            crate::rundir::user_runtime_dir(root, &user)?;
        }
        let workflow_cgroups =
            self.cgroups
                .delegate_workflows(&user.name, user.uid.as_raw(), user.gid.as_raw())?;
        let mut env = self.environment(&req, &user);
        env.push(format!(
            "STEWARD_WORKFLOW_CGROUPS={}",
            workflow_cgroups
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        ));
        let spec = ChildSpec {
            user: &user,
            cgroups: &self.cgroups,
            server: &req.server,
            executable: exe,
            args: req.args.clone(),
            env,
            stdin: req.stdin.as_ref().map(|s| s.as_bytes().to_vec()),
            log,
        };
        match child::spawn(spec) {
            Ok(pid) => Ok(HelperReply::Started {
                pid,
                cgroup: self.cgroups.display(&user.name, &req.server),
            }),
            Err(e) => {
                // Leave nothing half-started behind.
                let _ = self
                    .cgroups
                    .kill_all(&user.name, &req.server, Duration::from_secs(2));
                let _ = self.cgroups.remove(&user.name, &req.server);
                Err(e)
            }
        }
    }

    /// The allow-listed path for `key`, checked to be root-owned.
    pub(crate) fn executable(&self, key: &str) -> Result<std::path::PathBuf, SpawnError> {
        let exe = self.config.executables.get(key).ok_or_else(|| {
            SpawnError::Refused(format!("executable {key:?} is not in the allow-list"))
        })?;
        crate::config::ensure_root_owned(exe)?;
        Ok(exe.clone())
    }

    fn stop(
        &self,
        user: &str,
        server: &str,
        grace: Option<u64>,
    ) -> Result<HelperReply, SpawnError> {
        self.check_names(user, server)?;
        if !self.cgroups.exists(user, server) {
            return Err(SpawnError::NotFound(format!("no server {user}/{server}")));
        }
        let grace = Duration::from_secs(grace.unwrap_or(self.config.stop_grace_secs).min(300));
        let pids = self.cgroups.procs(user, server)?;
        for pid in &pids {
            crate::sys::kill_pid(*pid, nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.cgroups.procs(user, server)?.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let killed = self
            .cgroups
            .kill_all(user, server, Duration::from_secs(10))?;
        let cgroup_removed = self.cgroups.remove(user, server)?;
        Ok(HelperReply::Stopped {
            killed,
            cgroup_removed,
        })
    }

    fn status(&self, user: &str, server: &str) -> Result<ServerStatus, SpawnError> {
        if !self.cgroups.exists(user, server) {
            return Err(SpawnError::NotFound(format!("no server {user}/{server}")));
        }
        let pids = self.cgroups.procs(user, server)?;
        Ok(ServerStatus {
            user: user.to_string(),
            server: server.to_string(),
            cgroup: self.cgroups.display(user, server),
            running: !pids.is_empty(),
            pids,
            oom_killed: self.cgroups.oom_killed(user, server),
        })
    }

    /// This host's load, memory and number of running servers, read from `/proc` and the
    /// cgroup tree, so a hub placing servers across hosts can pick one and say why.
    fn host_status(&self) -> Result<HostStatus, SpawnError> {
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map_err(|e| SpawnError::io("reading /proc/loadavg", e))?;
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|e| SpawnError::io("reading /proc/meminfo", e))?;
        let (load_milli, mem_total_bytes, mem_available_bytes) =
            crate::hoststat::parse_proc(&loadavg, &meminfo)?;
        let servers = self
            .cgroups
            .list()
            .into_iter()
            .filter(|(u, s)| self.cgroups.procs(u, s).is_ok_and(|p| !p.is_empty()))
            .count();
        Ok(HostStatus {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            load_milli,
            mem_total_bytes,
            mem_available_bytes,
            servers: u32::try_from(servers).unwrap_or(u32::MAX),
        })
    }

    /// Confirms that `pid` is still this user's server: in its cgroup and owned by its uid.
    fn adopt(&self, user: &str, server: &str, pid: u32) -> Result<HelperReply, SpawnError> {
        self.check_names(user, server)?;
        let u = self.user(user)?;
        let status = self.status(user, server)?;
        if !status.pids.contains(&pid) {
            return Err(SpawnError::NotFound(format!(
                "pid {pid} is not in the cgroup of {user}/{server} (it holds {:?})",
                status.pids
            )));
        }
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| SpawnError::io(format!("reading /proc/{pid}/status"), e))?;
        let uid_line = proc_status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("");
        let all_match = uid_line
            .split_whitespace()
            .skip(1)
            .all(|v| v == u.uid.as_raw().to_string());
        if uid_line.is_empty() || !all_match {
            return Err(SpawnError::Refused(format!(
                "pid {pid} in {user}/{server} does not run as {user} ({uid_line})"
            )));
        }
        Ok(HelperReply::Adopted(status))
    }

    fn read_user_file(
        &self,
        user: &str,
        path: &str,
        max: Option<u64>,
    ) -> Result<HelperReply, SpawnError> {
        let u = self.user(user)?;
        let rel = Path::new(path);
        if !crate::request::relative_path_ok(path) {
            return Err(SpawnError::BadRequest(format!(
                "path {path:?} must be relative to the home directory, without '..'"
            )));
        }
        let max = max
            .unwrap_or(self.config.max_user_file_bytes)
            .min(self.config.max_user_file_bytes);
        let bytes = child::read_as_user(&u, rel, max)?;
        let size = bytes.len() as u64;
        let content = String::from_utf8(bytes)
            .map_err(|_| SpawnError::BadRequest(format!("{path} is not UTF-8 text")))?;
        Ok(HelperReply::File { content, size })
    }
}

fn user_group_names(user: &User) -> Vec<String> {
    let Ok(name) = std::ffi::CString::new(user.name.as_str()) else {
        return vec![];
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| nix::unistd::Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect()
}

pub fn error_reply(e: SpawnError) -> HelperReply {
    let code = match &e {
        SpawnError::BadRequest(_) | SpawnError::Config { .. } => HelperErrorCode::BadRequest,
        SpawnError::Refused(_) | SpawnError::Unsafe { .. } => HelperErrorCode::Refused,
        SpawnError::NotFound(_) => HelperErrorCode::NotFound,
        SpawnError::TooLarge(_) => HelperErrorCode::TooLarge,
        SpawnError::Unavailable(_) => HelperErrorCode::Unavailable,
        SpawnError::Reply { code, .. } => *code,
        _ => HelperErrorCode::Internal,
    };
    HelperReply::Error {
        code,
        message: e.to_string(),
    }
}

/// The whole helper: parse argv, load config, read stdin, answer on stdout.
/// Returns the process exit code (0 when the reply is not an error).
pub fn main_with(args: &[String], stdin: &mut dyn std::io::Read, stdout: &mut dyn Write) -> i32 {
    let reply = run(args, stdin);
    let code = i32::from(matches!(reply, HelperReply::Error { .. }));
    let text = serde_json::to_string(&reply).unwrap_or_else(|e| {
        format!(r#"{{"reply":"error","code":"internal","message":"serializing reply: {e}"}}"#)
    });
    let _ = writeln!(stdout, "{text}");
    code
}

fn run(args: &[String], stdin: &mut dyn std::io::Read) -> HelperReply {
    let mut config_path = crate::config::DEFAULT_CONFIG_PATH.to_string();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => match it.next() {
                Some(p) => config_path = p.clone(),
                None => return error_reply(SpawnError::BadRequest("--config needs a path".into())),
            },
            other => {
                return error_reply(SpawnError::BadRequest(format!(
                "unknown argument {other:?}; usage: steward-spawn [--config PATH] < request.json"
            )))
            }
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return error_reply(SpawnError::Refused(
            "steward-spawn must run as root (directly or through the shipped sudoers rule)".into(),
        ));
    }
    let config = match HelperConfig::load(Path::new(&config_path)) {
        Ok(c) => c,
        Err(e) => return error_reply(e),
    };
    let mut buf = Vec::new();
    if let Err(e) = std::io::Read::take(stdin, MAX_REQUEST_BYTES + 1).read_to_end(&mut buf) {
        return error_reply(SpawnError::io("reading the request", e));
    }
    let req = match crate::request::decode(&buf) {
        Ok(r) => r,
        Err(e) => return error_reply(e),
    };
    match Helper::new(config) {
        Ok(h) => h.handle(req),
        Err(e) => error_reply(e),
    }
}
