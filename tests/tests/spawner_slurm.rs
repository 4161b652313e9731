//! The Slurm backend against a real slurmctld + slurmd + munged (started by
//! `steward_e2e::slurm`): submission as the owner through `steward-spawn`, the batched
//! poller's states, adoption by job name, cancel, and each fault the issue names.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use steward_e2e::slurm::{self, Slurm};
use steward_e2e::*;
use steward_spawner::slurm::{Evidence, JobState, Poller, SlurmCluster};

const USER: &str = "steward-sl1";
const CLUSTER: &str = "e2e";

struct Fx {
    slurm: Slurm,
    dir: tempfile::TempDir,
    config: PathBuf,
    _lock: std::sync::MutexGuard<'static, ()>,
}

/// A server that proves what it got: who it runs as and the secret on its stdin.
const SERVER: &str =
    "read -r s; printf '%s %s\\n' \"$(id -un)\" \"$s\" > \"$HOME/slurm-e2e-$STEWARD_SERVER_NAME\"; exec sleep 300";

fn setup(test: &str) -> Option<Fx> {
    if !slurm::available(test) {
        return None;
    }
    let lock = slurm::lock();
    ensure_user(USER, "sl1-password-not-used");
    let slurm = Slurm::start();
    let dir = traversable_tempdir();
    let config = dir.path().join("spawn.toml");
    write_root_file(
        &config,
        &format!(
            r#"min_uid = 1000
log_dir = "{d}/logs"
env_allow = ["LANG", "STEWARD_*", "SBATCH_*"]
[executables]
sh = "/bin/sh"
[cgroup]
prefix = "steward-test-slurm"
[slurm.{CLUSTER}]
conf = "{conf}"
bootstrap_dir = "{d}/bootstrap"
timeout_secs = 20
[profiles.default]
memory = "128M"
cpu = 1.0
[profiles.default.slurm]
partition = "debug"
time_limit = "30"
[profiles.standby]
memory = "64M"
[profiles.standby.slurm]
partition = "standby"
[profiles.tiny]
memory = "64M"
[profiles.nowhere]
memory = "64M"
[profiles.nowhere.slurm]
partition = "nosuch"
"#,
            d = dir.path().display(),
            conf = slurm.conf.display()
        ),
    );
    Some(Fx {
        slurm,
        dir,
        config,
        _lock: lock,
    })
}

impl Fx {
    fn poller(&self) -> Poller {
        let mut c = SlurmCluster::new(CLUSTER);
        c.conf = Some(self.slurm.conf.clone());
        c.jobcomp_file = Some(self.slurm.jobcomp.clone());
        c.timeout_secs = 5;
        Poller::new(c)
    }

    fn submit(
        &self,
        server: &str,
        profile: Option<&str>,
        script: &str,
        stdin: Option<&str>,
    ) -> (i32, Value) {
        helper_call(
            &self.config,
            &json!({"verb": "slurm_submit", "user": USER, "server": server, "cluster": CLUSTER,
                    "executable": "sh", "args": ["-c", script], "profile": profile, "stdin": stdin,
                    "env": {"SBATCH_PARTITION": "standby", "LD_PRELOAD": "/tmp/evil.so", "STEWARD_X": "1"}}),
        )
    }

    fn submit_ok(
        &self,
        server: &str,
        profile: Option<&str>,
        script: &str,
        stdin: Option<&str>,
    ) -> String {
        let (code, reply) = self.submit(server, profile, script, stdin);
        assert_eq!(code, 0, "{reply}");
        assert_eq!(reply["reply"], "slurm_submitted", "{reply}");
        assert_eq!(reply["job_name"], format!("steward:{USER}:{server}"));
        reply["job_id"].as_str().unwrap().to_string()
    }

    /// A `sleep` server submitted, tracked and polled until it runs.
    fn running(&self, server: &str) -> (String, Poller) {
        let job = self.submit_ok(server, None, "exec sleep 300", None);
        let mut poller = self.poller();
        poller.track(&job, USER, server);
        poll_until(&mut poller, &job, "running", |s| {
            matches!(s, JobState::Running { .. })
        });
        (job, poller)
    }

    fn cancel(&self, server: &str, job_id: &str) -> (i32, Value) {
        helper_call(
            &self.config,
            &json!({"verb": "slurm_cancel", "user": USER, "server": server, "cluster": CLUSTER, "job_id": job_id}),
        )
    }

    fn bootstrap_files(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("bootstrap").join(USER))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Polls (one squeue per poll, checked) until `job_id`'s state matches.
fn poll_until(
    p: &mut Poller,
    job_id: &str,
    what: &str,
    pred: impl Fn(&JobState) -> bool,
) -> JobState {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        let r = p.poll();
        assert_eq!(r.calls.squeue, 1, "one squeue per poll");
        if let Some(j) = r.jobs.iter().find(|j| j.job_id == job_id) {
            if pred(&j.state) {
                return j.state.clone();
            }
            last = Some(j.state.clone());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("job {job_id} never became {what}; last state {last:?}");
}

fn home_file(server: &str) -> PathBuf {
    let u = nix::unistd::User::from_name(USER).unwrap().unwrap();
    u.dir.join(format!("slurm-e2e-{server}"))
}

fn squeue_field(s: &Slurm, job: &str, field: &str) -> String {
    let out = s
        .client("squeue")
        .args(["-h", "-j", job, "-o", field])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn submit_as_owner_run_list_adopt_and_cancel() {
    let Some(fx) = setup("submit_as_owner_run_list_adopt_and_cancel") else {
        return;
    };
    let marker = home_file("s1");
    let _ = std::fs::remove_file(&marker);
    let job = fx.submit_ok("s1", None, SERVER, Some("secret-123 with 'quotes' $(id)"));
    let mut poller = fx.poller();
    poller.track(&job, USER, "s1");
    let state = poll_until(&mut poller, &job, "running", |s| {
        matches!(s, JobState::Running { .. })
    });
    assert!(state.summary().starts_with("running on "), "{state:?}");
    // The server ran as the owner and read its secret on stdin, and the secret's file
    // was unlinked before the server started.
    assert!(
        wait_until(Duration::from_secs(20), || marker.exists()),
        "the server never wrote {}",
        marker.display()
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        format!("{USER} secret-123 with 'quotes' $(id)")
    );
    assert_eq!(fx.bootstrap_files(), Vec::<String>::new());
    // Resources and partition come from the profile, not from the requested SBATCH_*.
    assert_eq!(squeue_field(&fx.slurm, &job, "%P"), "debug");
    assert_eq!(
        squeue_field(&fx.slurm, &job, "%u|%m|%C|%l"),
        format!("{USER}|128M|1|30:00")
    );
    // A second submit of the same server is refused while the first is queued.
    let (code, reply) = fx.submit("s1", None, SERVER, None);
    assert_eq!(code, 1);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains(&format!("already queued as Slurm job {job}")),
        "{reply}"
    );

    // A restarted hub: a fresh poller finds the job by its name and adopts it.
    let mut fresh = fx.poller();
    let first = fresh.poll();
    assert!(first.jobs.is_empty());
    assert!(
        first
            .untracked
            .iter()
            .any(|j| j.job_id == job && j.owner == USER && j.server == "s1"),
        "{:?}",
        first.untracked
    );
    let adopted = fresh.adopt_all().unwrap();
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert!(matches!(adopted[0].state, JobState::Running { .. }));
    let r = fresh.poll();
    assert!(
        matches!(r.jobs[0].state, JobState::Running { .. }),
        "{:?}",
        r.jobs
    );

    // Cancel through the helper: gone, CANCELLED, confirmed with its exit code.
    let (code, reply) = fx.cancel("s1", &job);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["reply"], "slurm_cancelled");
    let gone = poll_until(&mut fresh, &job, "gone", |s| {
        matches!(s, JobState::Gone { .. })
    });
    let JobState::Gone {
        final_state,
        exit_code,
        ..
    } = &gone
    else {
        unreachable!()
    };
    assert_eq!(final_state, "CANCELLED", "{gone:?}");
    assert!(exit_code.is_some(), "{gone:?}");
    assert_eq!(fresh.tracked(), 0);
    // Cancelling again, or with a wrong server name for the id: nothing to cancel.
    let (code, reply) = fx.cancel("s1", &job);
    assert_eq!(
        (code, reply["code"].as_str()),
        (1, Some("not_found")),
        "{reply}"
    );
}

#[test]
fn cancelled_behind_our_back_is_gone_and_wrong_name_cancels_nothing() {
    let Some(fx) = setup("cancelled_behind_our_back") else {
        return;
    };
    let (job, mut poller) = fx.running("s2");
    // The helper cancels only a job of the named server: this id is s2's, not s3's.
    let (code, reply) = fx.cancel("s3", &job);
    assert_eq!(
        (code, reply["code"].as_str()),
        (1, Some("not_found")),
        "{reply}"
    );
    assert_eq!(squeue_field(&fx.slurm, &job, "%T"), "RUNNING");
    // Another user (root here) names jobs after s2, one with a forged squeue record in
    // its name: neither is taken for s2, and the poll still parses.
    let forged = format!(
        "x\n~0~<{job}~0~|CANCELLED~0~|{USER}~0~|None~0~|N/A~0~|vm~0~|steward:{USER}:s2~0~>\n{job}|CANCELLED|{USER}|None|N/A|vm|steward:{USER}:s2"
    );
    for name in [format!("steward:{USER}:s2"), forged] {
        let mut sbatch = fx.slurm.client("sbatch");
        sbatch
            .args([
                "--parsable",
                "--mem=16M",
                "--output=/dev/null",
                "--job-name",
            ])
            .arg(&name)
            .args(["--wrap", "sleep 300"]);
        slurm::run(&mut sbatch).unwrap_or_else(|e| panic!("{e}"));
    }
    let r = poller.poll();
    assert!(
        matches!(r.jobs[0].state, JobState::Running { .. }),
        "{:?}",
        r.jobs
    );
    assert!(
        r.impostors
            .iter()
            .any(|i| i.user == "root" && i.name == format!("steward:{USER}:s2")),
        "{:?}",
        r.impostors
    );
    assert!(r.untracked.is_empty(), "{:?}", r.untracked);
    // An admin cancels it with scancel: the poller reports it gone, CANCELLED.
    fx.slurm.client("scancel").arg(&job).status().unwrap();
    let gone = poll_until(&mut poller, &job, "gone", |s| {
        matches!(s, JobState::Gone { .. })
    });
    assert!(
        matches!(&gone, JobState::Gone { final_state, .. } if final_state == "CANCELLED"),
        "{gone:?}"
    );
    assert!(gone.failed());
}

#[test]
fn pending_with_reason_bad_partition_and_refusals() {
    let Some(fx) = setup("pending_with_reason_bad_partition_and_refusals") else {
        return;
    };
    fx.slurm.set_partition_up("standby", false);
    let job = fx.submit_ok("p1", Some("standby"), "exec sleep 300", Some("s"));
    let mut poller = fx.poller();
    poller.track(&job, USER, "p1");
    let state = poll_until(&mut poller, &job, "pending", |s| {
        matches!(s, JobState::Pending { .. })
    });
    assert!(
        matches!(&state, JobState::Pending { reason, .. } if reason == "PartitionDown"),
        "{state:?}"
    );
    assert!(state.summary().contains("PartitionDown"));
    // The secret waits, readable by the owner only, while the job pends.
    let files = fx.bootstrap_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let meta =
        std::fs::metadata(fx.dir.path().join("bootstrap").join(USER).join(&files[0])).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        meta.uid(),
        nix::unistd::User::from_name(USER)
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    );
    // The partition comes back: the job runs.
    fx.slurm.set_partition_up("standby", true);
    poll_until(&mut poller, &job, "running", |s| {
        matches!(s, JobState::Running { .. })
    });
    assert_eq!(fx.cancel("p1", &job).0, 0);

    // sbatch's own words for a partition that does not exist, and nothing left behind.
    let (code, reply) = fx.submit("bad", Some("nowhere"), "exec sleep 1", Some("s"));
    assert_eq!(
        (code, reply["code"].as_str()),
        (1, Some("refused")),
        "{reply}"
    );
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("Invalid partition name specified"),
        "{reply}"
    );
    assert!(!fx.bootstrap_files().iter().any(|f| f.starts_with("bad.")));
    // Requests the helper refuses before Slurm sees them.
    for (req, code, needle) in [
        (
            json!({"verb": "slurm_submit", "user": USER, "server": "x", "cluster": "moon", "executable": "sh"}),
            "bad_request",
            "unknown Slurm cluster",
        ),
        (
            json!({"verb": "slurm_submit", "user": USER, "server": "x", "cluster": CLUSTER, "executable": "bash"}),
            "refused",
            "allow-list",
        ),
        (
            json!({"verb": "slurm_submit", "user": "root", "server": "x", "cluster": CLUSTER, "executable": "sh"}),
            "refused",
            "min_uid",
        ),
        (
            json!({"verb": "slurm_submit", "user": USER, "server": "../x", "cluster": CLUSTER, "executable": "sh"}),
            "bad_request",
            "server name",
        ),
        (
            json!({"verb": "slurm_cancel", "user": USER, "server": "x", "cluster": CLUSTER, "job_id": "1;id"}),
            "bad_request",
            "job id",
        ),
        (
            json!({"verb": "slurm_submit", "user": USER, "server": "x", "cluster": CLUSTER, "executable": "sh", "partition": "debug"}),
            "bad_request",
            "unknown field",
        ),
    ] {
        let (c, reply) = helper_call(&fx.config, &req);
        assert_eq!(
            (c, reply["code"].as_str()),
            (1, Some(code)),
            "{req}: {reply}"
        );
        assert!(
            reply["message"].as_str().unwrap().contains(needle),
            "{req}: {reply}"
        );
    }
}

#[test]
fn over_memory_and_early_death_fail_within_one_poll() {
    let Some(fx) = setup("over_memory_and_early_death_fail_within_one_poll") else {
        return;
    };
    // 64M profile; the server tries to hold 400M.
    let hog = fx.submit_ok(
        "hog",
        Some("tiny"),
        "head -c 400M /dev/zero | tail -n 1 > /dev/null",
        None,
    );
    // A server that dies before it could ever register.
    let dies = fx.submit_ok("dies", None, "exit 3", None);
    let jobcomp = fx.slurm.jobcomp.clone();
    let ended = |id: &str| {
        std::fs::read_to_string(&jobcomp)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(&format!("JobId={id} ")))
    };
    assert!(
        wait_until(Duration::from_secs(60), || ended(&hog) && ended(&dies)),
        "jobs did not end: {}",
        fx.slurm.logs()
    );
    // The first poll after they ended reports both gone, with Slurm's state and reason.
    let mut poller = fx.poller();
    poller.track(&hog, USER, "hog");
    poller.track(&dies, USER, "dies");
    let r = poller.poll();
    let state = |id: &str| {
        r.jobs
            .iter()
            .find(|j| j.job_id == id)
            .unwrap()
            .state
            .clone()
    };
    let hog_state = state(&hog);
    assert!(
        matches!(&hog_state, JobState::Gone { final_state, exit_code: Some(_), evidence: Evidence::Jobcomp, .. } if final_state == "OUT_OF_MEMORY"),
        "{hog_state:?}"
    );
    assert!(hog_state.failed());
    assert!(
        hog_state.summary().contains("OUT_OF_MEMORY"),
        "{}",
        hog_state.summary()
    );
    let dies_state = state(&dies);
    assert!(
        matches!(&dies_state, JobState::Gone { final_state, exit_code: Some(c), .. } if final_state == "FAILED" && c == "3:0"),
        "{dies_state:?}"
    );
    assert_eq!(
        (r.calls.squeue, r.calls.sacct),
        (1, 1),
        "one squeue, one accounting call for both"
    );
    assert_eq!(poller.tracked(), 0);
}

#[test]
fn controller_down_is_unknown_never_gone_then_back() {
    let Some(fx) = setup("controller_down_is_unknown_never_gone_then_back") else {
        return;
    };
    let (job, mut poller) = fx.running("c1");
    fx.slurm.stop_controller();
    for _ in 0..3 {
        let r = poller.poll();
        assert_eq!(r.calls.squeue, 1);
        assert!(
            matches!(&r.jobs[0].state, JobState::Unknown { .. }),
            "{:?}",
            r.jobs
        );
    }
    assert_eq!(
        poller.tracked(),
        1,
        "an unreachable controller never makes a job gone"
    );
    // Submitting meanwhile is "unavailable", not "refused".
    let (code, reply) = fx.submit("c2", None, "exec sleep 1", Some("s"));
    assert_eq!(
        (code, reply["code"].as_str()),
        (1, Some("unavailable")),
        "{reply}"
    );
    assert!(!fx.bootstrap_files().iter().any(|f| f.starts_with("c2.")));
    fx.slurm
        .start_controller()
        .unwrap_or_else(|e| panic!("{e}\n{}", fx.slurm.logs()));
    poll_until(&mut poller, &job, "running again", |s| {
        matches!(s, JobState::Running { .. })
    });
    assert_eq!(fx.cancel("c1", &job).0, 0);
}
