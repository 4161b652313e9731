//! Real cylc-flow workflows for end-to-end tests: a Unix user with Cylc's global
//! config, a small workflow installed and played as that user, its state read back
//! with the `cylc` CLI, and everything stopped and cleaned when dropped.
//!
//! Cylc comes from the pinned venv `scripts/install-deps.sh` builds
//! (`/opt/steward/cylc-venv`, or `$STEWARD_CYLC_VENV`). Every `cylc` command runs as
//! the workflow's owner through `runuser` with a clean environment, as a spawned
//! server would: the owner's HOME, the venv's `bin` first on PATH.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where install-deps puts cylc-flow 8.7 + cylc-uiserver 1.10.
pub const DEFAULT_VENV: &str = "/opt/steward/cylc-venv";

pub fn venv() -> PathBuf {
    std::env::var_os("STEWARD_CYLC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VENV))
}

/// Root and the Cylc venv: under `CI=true` a missing one fails the test.
pub fn require_cylc(test: &str) -> bool {
    if !crate::require_root(test) {
        return false;
    }
    let cylc = venv().join("bin/cylc");
    if cylc.exists() {
        return true;
    }
    let why = format!(
        "{test}: {} is missing: run scripts/install-deps.sh (it builds the Cylc venv)",
        cylc.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIPPED {why}");
    false
}

/// A Unix user set up to run Cylc workflows.
pub struct CylcUser {
    pub name: String,
    pub home: PathBuf,
    pub uid: u32,
}

impl CylcUser {
    /// Creates the user if needed and writes `~/.cylc/flow/global.cylc` so that task
    /// jobs (run under `bash -l`, without the venv on PATH) find `cylc`.
    pub fn ensure(name: &str) -> CylcUser {
        let password: String = {
            use rand::Rng;
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(20)
                .map(char::from)
                .collect()
        };
        crate::ensure_user(name, &password);
        Self::existing(name)
    }

    /// An existing user (a demo user, whose password the hub's fixture knows), set up
    /// for Cylc the same way without touching the account.
    pub fn existing(name: &str) -> CylcUser {
        let u = nix::unistd::User::from_name(name)
            .unwrap()
            .unwrap_or_else(|| panic!("no user {name}"));
        let user = CylcUser {
            name: name.to_string(),
            home: u.dir.clone(),
            uid: u.uid.as_raw(),
        };
        let dir = user.home.join(".cylc/flow");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("global.cylc"),
            format!(
                "# Written by Steward's e2e tests.\n[platforms]\n    [[localhost]]\n        cylc path = {}\n",
                venv().join("bin").display()
            ),
        )
        .unwrap();
        user.chown_tree(&user.home.join(".cylc"));
        user
    }

    fn chown_tree(&self, path: &Path) {
        let st = Command::new("chown")
            .args(["-R", &format!("{0}:{0}", self.uid)])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "chown {}", path.display());
    }

    /// Runs `cylc ARGS` as this user with a clean environment.
    pub fn cylc(&self, args: &[&str]) -> Output {
        let path = format!("{}:/usr/bin:/bin", venv().join("bin").display());
        Command::new("runuser")
            .args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg(format!("PATH={path}"))
            .arg("cylc")
            .args(args)
            .current_dir(&self.home)
            .output()
            .unwrap()
    }

    /// Runs `cylc ARGS` and returns stdout, panicking with both streams on failure.
    pub fn cylc_ok(&self, args: &[&str]) -> String {
        let out = self.cylc(args);
        assert!(
            out.status.success(),
            "cylc {args:?} as {}: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A small integer-cycling workflow: one long `sleeper` task per cycle, one cycle at
/// a time, so a test finds `1/sleeper` running and can pause or hold it.
pub const SLEEPER_FLOW: &str = r#"[scheduler]
    allow implicit tasks = True
[scheduling]
    cycling mode = integer
    initial cycle point = 1
    runahead limit = P1
    [[graph]]
        P1 = sleeper[-P1] => sleeper
[runtime]
    [[sleeper]]
        script = sleep 120
"#;

/// An installed, playing workflow; stopped (its jobs killed) and cleaned on drop.
pub struct Workflow<'u> {
    pub user: &'u CylcUser,
    pub name: String,
    src: PathBuf,
}

impl<'u> Workflow<'u> {
    /// `cylc install` from a source directory in the user's home, then `cylc play`.
    /// A leftover run of the same name (an earlier run that died) is stopped first.
    pub fn install_and_play(user: &'u CylcUser, name: &str, flow: &str) -> Workflow<'u> {
        let src = user.home.join("steward-e2e-src").join(name);
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("flow.cylc"), flow).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
        user.chown_tree(&user.home.join("steward-e2e-src"));
        let wf = Workflow {
            user,
            name: name.to_string(),
            src,
        };
        wf.stop_and_clean();
        user.cylc_ok(&[
            "install",
            "--no-run-name",
            &format!("--workflow-name={name}"),
            &wf.src.display().to_string(),
        ]);
        user.cylc_ok(&["play", name]);
        wf
    }

    /// Takes charge of a workflow something else installed and played (the demo's),
    /// so that it is stopped and cleaned on drop like one of ours.
    pub fn adopt(user: &'u CylcUser, name: &str) -> Workflow<'u> {
        Workflow {
            user,
            name: name.to_string(),
            src: user.home.join("cylc-src").join(name),
        }
    }

    /// `~owner/name`, the id Cylc's UI and GraphQL use.
    pub fn id(&self) -> String {
        format!("~{}/{}", self.user.name, self.name)
    }

    /// `cylc dump -t`: one `cycle/task:state[ (held)]` line per active task.
    pub fn tasks(&self) -> String {
        String::from_utf8_lossy(&self.user.cylc(&["dump", "-t", &self.name]).stdout).into_owned()
    }

    /// The scheduler's `status` (running, paused, stopping…) from `cylc dump -g`, or
    /// `None` when it does not answer.
    pub fn status(&self) -> Option<String> {
        let out = self.user.cylc(&["dump", "-g", &self.name]);
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("status=").map(str::to_string))
    }

    /// The scheduler's process id, from its contact file.
    pub fn scheduler_pid(&self) -> Option<u32> {
        let contact = self
            .user
            .home
            .join("cylc-run")
            .join(&self.name)
            .join(".service/contact");
        std::fs::read_to_string(contact)
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("CYLC_WORKFLOW_PID=")
                    .and_then(|p| p.trim().parse().ok())
            })
    }

    /// Polls `what` (bounded) until `pred` holds; panics with the last value.
    pub fn wait_for<T: std::fmt::Debug>(
        &self,
        timeout: Duration,
        mut what: impl FnMut(&Self) -> T,
        pred: impl Fn(&T) -> bool,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let v = what(self);
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{}: timed out; last seen {v:?}",
                self.id()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn stop_and_clean(&self) {
        let run_dir = self.user.home.join("cylc-run").join(&self.name);
        if !run_dir.exists() {
            return;
        }
        // --kill kills the task jobs (so no `sleep` outlives the test), then stops.
        let _ = self.user.cylc(&["stop", "--kill", &self.name]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.scheduler_pid().is_some_and(crate::alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
        if self.scheduler_pid().is_some_and(crate::alive) {
            let _ = self.user.cylc(&["stop", "--now", "--now", &self.name]);
            std::thread::sleep(Duration::from_secs(2));
        }
        let _ = self.user.cylc(&["clean", "--yes", &self.name]);
        let _ = std::fs::remove_dir_all(&run_dir);
    }
}

impl Drop for Workflow<'_> {
    fn drop(&mut self) {
        self.stop_and_clean();
        let _ = std::fs::remove_dir_all(&self.src);
    }
}
