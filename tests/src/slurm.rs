//! A private, real single-node Slurm for tests and benchmarks: munged, slurmctld and
//! slurmd started by hand (apt never starts daemons on the test machines), with a
//! generated `slurm.conf` in [`DIR`].
//!
//! Choices, each forced by how Slurm behaves on these machines (cgroup v1, no systemd):
//! * everything lives in `/run/steward-slurm-e2e` (0755): munged refuses a socket
//!   below a directory that is not world-executable, so no 0700 temporary directory;
//! * memory is enforced by `task/cgroup` with `ConstrainRAMSpace` on `cgroup/v1`, which
//!   kills a job over its `--mem` and reports `OUT_OF_MEMORY`; `OverMemoryKill` (the
//!   other way) may not be combined with it, and only reports `FAILED`;
//! * no slurmdbd: `sacct` then answers "accounting storage is disabled", so ends are
//!   confirmed from `jobcomp/filetxt` ([`Slurm::jobcomp`]), which needs neither MariaDB
//!   nor two more daemons; the poller tries sacct first, as a site with slurmdbd wants;
//! * `NodeName` is `hostname -s` (slurmd finds itself by it) at 127.0.0.1, with less
//!   memory than the machine has so the node never drains;
//! * ports 16817/16818, and two partitions: `debug` (default) and `standby`, which tests
//!   set DOWN to see a job pend with Slurm's reason.
//!
//! [`Slurm::start`] first stops whatever a previous run left (by pidfile), so it is
//! idempotent; dropping the value stops the daemons, removes the cgroups Slurm made
//! and the directory. Depends only on `std` and `nix`, so a benchmark can `#[path]` it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const DIR: &str = "/run/steward-slurm-e2e";
pub const CTLD_PORT: u16 = 16817;
pub const SLURMD_PORT: u16 = 16818;

const BINARIES: &[&str] = &[
    "/usr/sbin/munged",
    "/usr/sbin/slurmctld",
    "/usr/sbin/slurmd",
    "/usr/bin/sbatch",
    "/usr/bin/squeue",
    "/usr/bin/scancel",
    "/usr/bin/scontrol",
    "/usr/bin/sinfo",
];

/// Whether Slurm and munge are installed and we are root; under `CI=true` anything
/// missing is a failure, otherwise the caller skips (after this prints why).
pub fn available(test: &str) -> bool {
    let mut missing: Vec<String> = BINARIES
        .iter()
        .filter(|p| !Path::new(p).exists())
        .map(|p| p.to_string())
        .collect();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "{} missing (apt-get install munge slurm-wlm slurm-client; scripts/install-deps.sh does; run as root)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// The ports are fixed, so one cluster per machine: tests hold this while they use it.
pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Slurm {
    pub dir: PathBuf,
    pub conf: PathBuf,
    /// The jobcomp/filetxt log: one line per finished job.
    pub jobcomp: PathBuf,
    pub node: String,
}

/// Runs a command to completion: its stdout, or an error with its output.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs a daemon's starter (it forks and the parent exits). Its stdio goes to a file,
/// not a pipe: a daemon that kept an inherited pipe open would block `output()`.
fn daemonize(cmd: &mut Command, log: &Path) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({status}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        ))
    }
}

fn wait(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// SIGTERM the pid in `pidfile`, SIGKILL after 10 s.
fn kill_pidfile(pidfile: &Path) {
    let Some(pid) = std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    let p = nix::unistd::Pid::from_raw(pid);
    if nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM).is_err() {
        return;
    }
    if !wait(Duration::from_secs(10), || !pid_alive(pid)) {
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        wait(Duration::from_secs(2), || !pid_alive(pid));
    }
    let _ = std::fs::remove_file(pidfile);
}

fn short_hostname() -> String {
    let h = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    h.split('.').next().unwrap_or("localhost").to_string()
}

/// Memory Slurm may hand out: well below what the machine has (else the node drains).
fn real_memory_mb() -> u64 {
    let kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(2 << 20);
    (kb / 1024 / 2).clamp(256, 4000)
}

impl Slurm {
    /// Starts munged, slurmctld and slurmd (panics with their logs if they do not come up).
    pub fn start() -> Slurm {
        let dir = PathBuf::from(DIR);
        let s = Slurm {
            conf: dir.join("slurm.conf"),
            jobcomp: dir.join("jobcomp.txt"),
            node: short_hostname(),
            dir,
        };
        s.stop_all();
        s.setup().unwrap_or_else(|e| {
            let logs = s.logs();
            s.stop_all();
            panic!("Slurm did not start: {e}\n{logs}")
        });
        s
    }

    fn setup(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let d = &self.dir;
        let munge = d.join("munge");
        for sub in ["state", "spool", "munge"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let munge_user = nix::unistd::User::from_name("munge")
            .ok()
            .flatten()
            .ok_or("no munge user (is munge installed?)")?;
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
            &mut bytes,
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(&key, &bytes).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400))
            .map_err(|e| e.to_string())?;
        for p in [&munge, &key] {
            nix::unistd::chown(p.as_path(), Some(munge_user.uid), Some(munge_user.gid))
                .map_err(|e| e.to_string())?;
        }
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        let socket = munge.join("munge.socket");
        daemonize(
            Command::new("/usr/sbin/runuser")
                .args(["-u", "munge", "--", "/usr/sbin/munged"])
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg(format!("--pid-file={}", munge.join("munged.pid").display()))
                .arg(format!("--log-file={}", munge.join("munged.log").display()))
                .arg(format!(
                    "--seed-file={}",
                    munge.join("munged.seed").display()
                )),
            &d.join("munged.out"),
        )?;
        if !wait(Duration::from_secs(10), || socket.exists()) {
            return Err("munged made no socket".into());
        }
        std::fs::write(
            d.join("cgroup.conf"),
            format!(
                "CgroupPlugin={}\nCgroupMountpoint=/sys/fs/cgroup\nCgroupAutomount=no\n\
                 ConstrainRAMSpace=yes\nConstrainSwapSpace=no\nConstrainCores=no\n",
                // The test machines mount v1 controllers (hybrid); a pure v2 host has none.
                if Path::new("/sys/fs/cgroup/memory").is_dir() {
                    "cgroup/v1"
                } else {
                    "cgroup/v2"
                }
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(&self.conf, self.slurm_conf(&socket)).map_err(|e| e.to_string())?;
        self.start_controller()?;
        daemonize(
            Command::new("/usr/sbin/slurmd").arg("-f").arg(&self.conf),
            &self.dir.join("slurmd.out"),
        )?;
        let idle = wait(Duration::from_secs(30), || {
            self.client("sinfo")
                .args(["-h", "-n", &self.node, "-o", "%t"])
                .output()
                .is_ok_and(|o| {
                    let t = String::from_utf8_lossy(&o.stdout);
                    ["idle", "mix", "alloc"].iter().any(|s| t.starts_with(s))
                })
        });
        if !idle {
            return Err("slurmd never reported the node idle".into());
        }
        Ok(())
    }

    fn slurm_conf(&self, socket: &Path) -> String {
        let d = self.dir.display();
        let node = &self.node;
        let mem = real_memory_mb();
        format!(
            "ClusterName=steward-e2e\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={CTLD_PORT}\n\
             SlurmdPort={SLURMD_PORT}\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/cgroup\n\
             TaskPlugin=task/cgroup\n\
             JobAcctGatherType=jobacct_gather/cgroup\n\
             JobAcctGatherFrequency=1\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/filetxt\n\
             JobCompLoc={d}/jobcomp.txt\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core_Memory\n\
             SchedulerType=sched/backfill\n\
             SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             MinJobAge=300\n\
             KillWait=2\n\
             InactiveLimit=0\n\
             Waittime=0\n\
             MessageTimeout=5\n\
             MailProg=/bin/true\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs=2 RealMemory={mem} State=UNKNOWN\n\
             PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n\
             PartitionName=standby Nodes=ALL MaxTime=INFINITE State=UP\n",
            socket = socket.display()
        )
    }

    /// A Slurm client command for this cluster.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(format!("/usr/bin/{program}"));
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `scontrol ARGS` (panics on failure).
    pub fn scontrol(&self, args: &[&str]) -> String {
        run(self.client("scontrol").args(args)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn set_partition_up(&self, partition: &str, up: bool) {
        self.scontrol(&[
            "update",
            &format!("PartitionName={partition}"),
            if up { "State=UP" } else { "State=DOWN" },
        ]);
    }

    /// Starts slurmctld (it recovers its jobs from the state directory) and waits for it.
    pub fn start_controller(&self) -> Result<(), String> {
        daemonize(
            Command::new("/usr/sbin/slurmctld")
                .arg("-f")
                .arg(&self.conf),
            &self.dir.join("slurmctld.out"),
        )?;
        let up = wait(Duration::from_secs(20), || {
            self.client("scontrol")
                .arg("ping")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("UP"))
        });
        if up {
            Ok(())
        } else {
            Err("slurmctld did not answer ping".into())
        }
    }

    /// Stops slurmctld only (slurmd and running jobs stay), as a controller outage.
    pub fn stop_controller(&self) {
        kill_pidfile(&self.dir.join("slurmctld.pid"));
    }

    pub fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log", "munge/munged.log"]
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "--- {f}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop_all(&self) {
        if self.conf.exists() && self.dir.join("slurmctld.pid").exists() {
            // Jobs first, so slurmd does not leave their processes behind.
            let _ = self
                .client("scancel")
                .args(["--quiet", "--state=PENDING"])
                .output();
            let _ = self
                .client("scancel")
                .args(["--quiet", "--state=RUNNING"])
                .output();
        }
        for pidfile in ["slurmd.pid", "slurmctld.pid", "munge/munged.pid"] {
            kill_pidfile(&self.dir.join(pidfile));
        }
        // task/cgroup leaves empty slurm_<node> directories in the v1 hierarchies.
        for c in [
            "freezer", "memory", "cpuset", "devices", "cpuacct", "cpu", "pids",
        ] {
            remove_cgroup_tree(
                &Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(format!("slurm_{}", self.node)),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills what is left in a cgroup tree (job processes outlive a killed slurmd) and
/// rmdirs it, children first (cgroupfs files vanish with their directory).
fn remove_cgroup_tree(p: &Path) {
    if let Ok(entries) = std::fs::read_dir(p) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    if !p.exists() {
        return;
    }
    wait(Duration::from_secs(5), || {
        let procs = std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::fs::remove_dir(p).is_ok() || !p.exists()
    });
}

impl Drop for Slurm {
    fn drop(&mut self) {
        self.stop_all();
    }
}
