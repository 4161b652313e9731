//! steward-spawn against the real kernel, as root: users, cgroup v1 limits, kills,
//! file reads as the owner, and every refusal. (v2 is exercised on the machine's unified
//! hierarchy, which offers cgroup.kill; the full v2 limit layout is unit-tested in the
//! spawner crate against a directory laid out like cgroupfs.)

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use steward_e2e::*;

const USER: &str = "steward-t1";

struct Fixture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    prefix: String,
}

fn fixture(test: &str, extra: &str) -> Fixture {
    fixture_with(test, "", extra)
}

/// `top` holds top-level keys, `extra` whole tables.
fn fixture_with(test: &str, top: &str, extra: &str) -> Fixture {
    ensure_user(USER, "t1-password-not-used");
    let dir = traversable_tempdir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let prefix = format!("steward-test-{test}");
    let config = dir.path().join("spawn.toml");
    let text = format!(
        r#"{top}
min_uid = 1000
log_dir = "{logs}"
env_allow = ["LANG", "STEWARD_*"]
[executables]
sh = "/bin/sh"
sleep = "/usr/bin/sleep"
[cgroup]
prefix = "{prefix}"
{extra}
"#,
        logs = dir.path().join("logs").display()
    );
    let text = if text.contains("[profiles.default]") {
        text
    } else {
        format!("{text}\n[profiles.default]\nmemory = \"256M\"\ncpu = 1.0\npids = 64\n")
    };
    write_root_file(&config, &text);
    // A run that failed half-way may have left servers under this test's own prefix.
    let (_, list) = helper_call(&config, &json!({"verb": "list"}));
    for s in list["servers"].as_array().into_iter().flatten() {
        helper_call(
            &config,
            &json!({"verb": "stop", "user": s["user"], "server": s["server"], "grace_secs": 0}),
        );
    }
    Fixture {
        _dir: dir,
        config,
        prefix,
    }
}

fn start(f: &Fixture, server: &str, script: &str, profile: Option<&str>) -> (i32, Value) {
    start_exe(f, server, "sh", &["-c", script], profile)
}

/// Starts an allow-listed executable with a hostile requested environment.
fn start_exe(
    f: &Fixture,
    server: &str,
    exe: &str,
    args: &[&str],
    profile: Option<&str>,
) -> (i32, Value) {
    helper_call(
        &f.config,
        &json!({"verb": "start", "user": USER, "server": server, "executable": exe, "args": args,
                "env": {"LD_PRELOAD": "/tmp/evil.so", "PYTHONPATH": "/tmp", "PATH": "/tmp/evil", "STEWARD_HUB": "x", "LANG": "C.UTF-8", "HOME": "/root"},
                "profile": profile}),
    )
}

fn stop(f: &Fixture, server: &str) -> Value {
    helper_call(
        &f.config,
        &json!({"verb": "stop", "user": USER, "server": server, "grace_secs": 1}),
    )
    .1
}

fn procs(f: &Fixture, ctrl: &str, server: &str) -> Vec<u32> {
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/{ctrl}/{}/{USER}/{server}/cgroup.procs",
        f.prefix
    ))
    .unwrap_or_default()
    .lines()
    .filter_map(|l| l.parse().ok())
    .collect()
}

fn status_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap()
}

#[test]
fn start_runs_as_user_in_cgroup_with_clean_env_and_stop_removes_all() {
    if !require_root("start_runs_as_user") {
        return;
    }
    let f = fixture("start", "");
    let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
    // `sleep` itself, not a shell: a shell may open descriptors of its own, which would
    // hide whether any were inherited from the helper.
    let (code, reply) = start_exe(&f, "s1", "sleep", &["300"], None);
    assert_eq!(code, 0, "{reply}");
    assert_eq!(reply["reply"], "started");
    let pid = reply["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        status_field(pid, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec![user.uid.to_string(); 4]
    );
    assert_eq!(
        status_field(pid, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec![user.gid.to_string(); 4]
    );
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    for ctrl in ["memory", "cpu", "pids", "freezer", "blkio"] {
        assert!(procs(&f, ctrl, "s1").contains(&pid), "{ctrl}");
    }
    assert_eq!(
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/memory/{}/{USER}/s1/memory.limit_in_bytes",
            f.prefix
        ))
        .unwrap()
        .trim(),
        (256u64 << 20).to_string()
    );
    assert_eq!(
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/pids/{}/{USER}/s1/pids.max",
            f.prefix
        ))
        .unwrap()
        .trim(),
        "64"
    );
    let env = String::from_utf8(std::fs::read(format!("/proc/{pid}/environ")).unwrap()).unwrap();
    let env: Vec<&str> = env.split('\0').filter(|s| !s.is_empty()).collect();
    assert!(
        env.contains(&"STEWARD_HUB=x") && env.contains(&"LANG=C.UTF-8"),
        "{env:?}"
    );
    assert!(
        env.contains(&"PATH=/usr/local/bin:/usr/bin:/bin"),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("HOME={}", user.dir.display()).as_str()),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("LD_")
            || e.starts_with("PYTHON")
            || e.contains("/tmp/evil")
            || *e == "HOME=/root"),
        "{env:?}"
    );
    // Only stdio survives exec. The reply comes right after exec, while the dynamic
    // loader may still open a library (briefly as fd 3); an inherited descriptor would
    // stay for the life of `sleep`. So wait until `sleep` is inside its sleep call
    // (x86_64 clock_nanosleep 230 or nanosleep 35), when loading is over, then require
    // 0-2 only. Waiting for "at most three descriptors" instead could catch the instant
    // before the loader opens its first library, and then see it open.
    let in_sleep = || {
        std::fs::read_to_string(format!("/proc/{pid}/syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .is_some_and(|nr| nr == "230" || nr == "35")
    };
    // Under a loaded CI machine the loader can take more than 2 s.
    assert!(
        wait_until(Duration::from_secs(10), in_sleep),
        "sleep (pid {pid}) did not reach its sleep call within 10 s"
    );
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let targets: Vec<String> = fds
        .iter()
        .map(|fd| {
            let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"));
            format!(
                "{fd} -> {}",
                link.map(|l| l.display().to_string()).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        fds.iter().all(|fd| ["0", "1", "2"].contains(&fd.as_str())),
        "descriptors inherited across exec: {targets:?}"
    );

    // A second start of a running server is refused; list and status see it.
    let (code, again) = start(&f, "s1", "sleep 1", None);
    assert_eq!(code, 1);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{again}"
    );
    let (_, list) = helper_call(&f.config, &json!({"verb": "list"}));
    assert!(
        list["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["server"] == "s1" && s["running"] == true),
        "{list}"
    );
    let (_, adopted) = helper_call(
        &f.config,
        &json!({"verb": "adopt", "user": USER, "server": "s1", "pid": pid}),
    );
    assert_eq!(adopted["reply"], "adopted", "{adopted}");
    let (_, wrong) = helper_call(
        &f.config,
        &json!({"verb": "adopt", "user": USER, "server": "s1", "pid": 1}),
    );
    assert_eq!(wrong["code"], "not_found", "{wrong}");

    let stopped = stop(&f, "s1");
    assert_eq!(stopped["reply"], "stopped", "{stopped}");
    assert!(!alive(pid));
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/pids/{}/{USER}/s1", f.prefix)).exists(),
        "cgroup not removed"
    );
}

#[test]
fn stop_kills_double_forking_daemons_that_ignore_sigterm() {
    if !require_root("stop_kills_daemons") {
        return;
    }
    let f = fixture("daemon", "");
    // The child escapes its parent twice (setsid + background) and ignores SIGTERM.
    let script =
        "trap '' TERM; (trap '' TERM; setsid sh -c \"trap '' TERM; sleep 1000\" & ) ; sleep 1000";
    let (code, reply) = start(&f, "d1", script, None);
    assert_eq!(code, 0, "{reply}");
    assert!(
        wait_until(Duration::from_secs(5), || procs(&f, "pids", "d1").len()
            >= 3),
        "{:?}",
        procs(&f, "pids", "d1")
    );
    let before = procs(&f, "pids", "d1");
    let stopped = stop(&f, "d1");
    assert_eq!(stopped["reply"], "stopped", "{stopped}");
    for pid in before {
        assert!(!alive(pid), "pid {pid} survived the stop");
    }
}

#[test]
fn memory_limit_oom_kills_and_status_reports_it() {
    if !require_root("memory_oom") {
        return;
    }
    let f = fixture(
        "oom",
        "[profiles.default]\nmemory = \"256M\"\n[profiles.tiny]\nmemory = \"32M\"\npids = 64\n",
    );
    // `tail -n1` keeps the one enormous line in memory: it must die, not the machine.
    let (code, reply) = start(
        &f,
        "m1",
        "head -c 400000000 /dev/zero | tail -n1 > /dev/null; echo survived; sleep 60",
        Some("tiny"),
    );
    assert_eq!(code, 0, "{reply}");
    let oom = wait_until(Duration::from_secs(30), || {
        let (_, s) = helper_call(
            &f.config,
            &json!({"verb": "status", "user": USER, "server": "m1"}),
        );
        s["oom_killed"] == true
    });
    assert!(oom, "no OOM kill reported");
    let oom_control = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory/{}/{USER}/m1/memory.oom_control",
        f.prefix
    ))
    .unwrap();
    assert!(
        oom_control
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "{oom_control}"
    );
    stop(&f, "m1");
}

#[test]
fn fork_bomb_stops_at_pids_max() {
    if !require_root("fork_bomb") {
        return;
    }
    let f = fixture("pids", "[profiles.default]\npids = 20\n");
    let (code, reply) = start(
        &f,
        "p1",
        "for i in $(seq 200); do sleep 60 & done; sleep 60",
        None,
    );
    assert_eq!(code, 0, "{reply}");
    std::thread::sleep(Duration::from_secs(2));
    let n = procs(&f, "pids", "p1").len();
    assert!(n <= 20, "{n} processes despite pids.max = 20");
    let events = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/pids/{}/{USER}/p1/pids.events",
        f.prefix
    ))
    .unwrap();
    assert!(!events.contains("max 0"), "pids.max never hit: {events}");
    stop(&f, "p1");
}

#[test]
fn cpu_quota_throttles() {
    if !require_root("cpu_quota") {
        return;
    }
    let f = fixture("cpu", "[profiles.default]\ncpu = 0.2\n");
    let (code, reply) = start(
        &f,
        "c1",
        "timeout 2 sh -c 'while :; do :; done'; sleep 60",
        None,
    );
    assert_eq!(code, 0, "{reply}");
    std::thread::sleep(Duration::from_millis(2500));
    let stat = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/cpu/{}/{USER}/c1/cpu.stat",
        f.prefix
    ))
    .unwrap();
    let get = |k: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert!(get("nr_throttled ") > 0, "{stat}");
    // 2 s of busy loop at a 20% quota: well under 1 s of CPU.
    let usage_ns: u64 = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/cpu/{}/{USER}/c1/cpuacct.usage",
        f.prefix
    ))
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0);
    if usage_ns > 0 {
        assert!(
            usage_ns < 900_000_000,
            "used {usage_ns} ns of CPU under a 0.2 quota"
        );
    }
    stop(&f, "c1");
}

#[test]
fn read_user_file_reads_as_the_owner_and_refuses_symlinks() {
    if !require_root("read_user_file") {
        return;
    }
    let f = fixture_with("read", "max_user_file_bytes = 1000", "");
    let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
    let dir = user.dir.join(".steward-test-read");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.toml"), "[grants]\n").unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.join("link.toml")).unwrap();
    std::fs::write(dir.join("root-only"), "secret").unwrap();
    std::fs::set_permissions(
        dir.join("root-only"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(dir.join("big"), "x".repeat(5000)).unwrap();
    sh(&format!(
        "chown {USER} {d} {d}/policy.toml {d}/big; chown -h {USER} {d}/link.toml",
        d = dir.display()
    ));
    let read = |p: &str| {
        helper_call(
            &f.config,
            &json!({"verb": "read_user_file", "user": USER, "path": p}),
        )
        .1
    };
    let ok = read(".steward-test-read/policy.toml");
    assert_eq!(ok["content"], "[grants]\n", "{ok}");
    let link = read(".steward-test-read/link.toml");
    assert!(
        link["message"].as_str().unwrap().contains("symbolic link"),
        "{link}"
    );
    // Root could read this file; the owner cannot — so the helper really read as the owner.
    let denied = read(".steward-test-read/root-only");
    assert_eq!(denied["reply"], "error");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("Permission denied")
            || denied["message"].as_str().unwrap().contains("EACCES"),
        "{denied}"
    );
    assert_eq!(read(".steward-test-read/big")["code"], "too_large");
    assert_eq!(read(".steward-test-read/missing")["code"], "not_found");
    for bad in ["../../etc/passwd", "/etc/passwd", "", "a/../../b"] {
        assert_eq!(read(bad)["code"], "bad_request", "{bad}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refusals_name_the_rule() {
    if !require_root("refusals") {
        return;
    }
    let f = fixture("refuse", "");
    let call = |v: Value| helper_call(&f.config, &v).1;
    let msg = |v: &Value| v["message"].as_str().unwrap_or_default().to_string();
    let r = call(json!({"verb": "start", "user": "root", "server": "x", "executable": "sh"}));
    assert!(msg(&r).contains("min_uid"), "{r}");
    let r = call(json!({"verb": "start", "user": "daemon", "server": "x", "executable": "sh"}));
    assert!(msg(&r).contains("min_uid"), "{r}");
    let r = call(json!({"verb": "start", "user": USER, "server": "x", "executable": "bash"}));
    assert!(msg(&r).contains("allow-list"), "{r}");
    let r = call(json!({"verb": "start", "user": "Bad User", "server": "x", "executable": "sh"}));
    assert!(msg(&r).contains("pattern"), "{r}");
    let r = call(json!({"verb": "start", "user": USER, "server": "../x", "executable": "sh"}));
    assert_eq!(r["code"], "bad_request", "{r}");
    let r = call(
        json!({"verb": "start", "user": USER, "server": "x", "executable": "sh", "profile": "huge"}),
    );
    assert!(msg(&r).contains("unknown profile"), "{r}");
    let r = call(json!({"verb": "launch_missiles"}));
    assert_eq!(r["code"], "bad_request", "{r}");
    let r =
        call(json!({"verb": "start", "user": USER, "server": "x", "executable": "sh", "uid": 0}));
    assert_eq!(
        r["code"], "bad_request",
        "unknown fields must be refused: {r}"
    );

    // A config anyone but root could have written is refused outright.
    std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o664)).unwrap();
    let r = call(json!({"verb": "list"}));
    assert!(msg(&r).contains("writable by group"), "{r}");
    std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    // So is an allow-listed executable that a user could replace.
    let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
    let exe_dir = f.config.parent().unwrap().join("exe");
    std::fs::create_dir_all(&exe_dir).unwrap();
    std::fs::copy("/bin/true", exe_dir.join("true")).unwrap();
    nix::unistd::chown(&exe_dir.join("true"), Some(user.uid), None).unwrap();
    let cfg = std::fs::read_to_string(&f.config).unwrap().replace(
        "[executables]",
        &format!("[executables]\nusers_true = \"{}/true\"", exe_dir.display()),
    );
    write_root_file(&f.config, &cfg);
    let r = call(json!({"verb": "list"}));
    assert!(msg(&r).contains("not root"), "{r}");
}

#[test]
fn v2_unified_hierarchy_tracks_and_kills_with_cgroup_kill() {
    if !require_root("v2_unified") {
        return;
    }
    if !Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        // Pure v2 machines run the v1 tests' twins through /sys/fs/cgroup itself.
        assert!(
            Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            "no cgroup v2 hierarchy at all"
        );
        return;
    }
    let f = fixture("v2", "");
    let cfg = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace(
            "[cgroup]",
            "[cgroup]\nversion = \"v2\"\nroot = \"/sys/fs/cgroup/unified\"",
        )
        .replace("memory = \"256M\"\ncpu = 1.0\npids = 64\n", "");
    write_root_file(&f.config, &cfg);
    let (code, reply) = start(
        &f,
        "u1",
        "trap '' TERM; (setsid sleep 1000 &); sleep 1000",
        None,
    );
    assert_eq!(code, 0, "{reply}");
    let dir = format!("/sys/fs/cgroup/unified/{}/{USER}/u1", f.prefix);
    assert!(wait_until(
        Duration::from_secs(5),
        || std::fs::read_to_string(format!("{dir}/cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    ));
    let pids: Vec<u32> = std::fs::read_to_string(format!("{dir}/cgroup.procs"))
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    let stopped = stop(&f, "u1");
    assert_eq!(stopped["reply"], "stopped", "{stopped}");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived cgroup.kill");
    }
    assert!(!Path::new(&dir).exists());
}

/// The shipped sudoers rule, with its paths pointed at this build, lets an unprivileged
/// hub account run the helper with its config and nothing else.
#[test]
fn sudo_mode_runs_only_the_helper() {
    if !require_root("sudo_mode") {
        return;
    }
    let f = fixture("sudo", "");
    let hub_user = "steward-hubtest";
    if nix::unistd::User::from_name(hub_user).unwrap().is_none() {
        sh(&format!("useradd -r -M -s /usr/sbin/nologin {hub_user}"));
    }
    let helper = bin("steward-spawn");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../etc/sudoers.d/steward"
    ))
    .unwrap();
    let rule = shipped
        .replace("Defaults:steward ", &format!("Defaults:{hub_user} "))
        .replace("steward ALL=(root)", &format!("{hub_user} ALL=(root)"))
        .replace(
            "/usr/libexec/steward/steward-spawn",
            &helper.display().to_string(),
        )
        .replace("/etc/steward/spawn.toml", &f.config.display().to_string());
    let rule_path = format!("/etc/sudoers.d/steward-e2e-{}", std::process::id());
    std::fs::write(&rule_path, &rule).unwrap();
    std::fs::set_permissions(&rule_path, std::fs::Permissions::from_mode(0o440)).unwrap();
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _guard = Remove(rule_path.clone());
    sh(&format!("visudo -cf {rule_path}"));

    let as_hub = |args: &str, input: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new("runuser")
            .args([
                "-u",
                hub_user,
                "--",
                "sh",
                "-c",
                &format!("cd / && sudo -n {args}"),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let req = json!({"verb": "start", "user": USER, "server": "via-sudo", "executable": "sleep", "args": ["300"]}).to_string();
    let out = as_hub(
        &format!("{} --config {}", helper.display(), f.config.display()),
        &req,
    );
    let reply: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(reply["reply"], "started", "{reply}");
    let pid = reply["pid"].as_u64().unwrap() as u32;
    let uid = nix::unistd::User::from_name(USER)
        .unwrap()
        .unwrap()
        .uid
        .to_string();
    assert_eq!(
        status_field(pid, "Uid").split_whitespace().next().unwrap(),
        uid
    );

    // Anything else is refused by sudo itself.
    for other in [
        "/bin/sh -c id",
        &format!("{} --config /tmp/other.toml", helper.display()),
        &helper.display().to_string(),
        "/usr/bin/id",
    ] {
        let out = as_hub(other, "");
        assert!(!out.status.success(), "sudo allowed {other:?}");
    }
    let out = as_hub(
        &format!("{} --config {}", helper.display(), f.config.display()),
        &json!({"verb": "stop", "user": USER, "server": "via-sudo", "grace_secs": 0}).to_string(),
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["reply"], "stopped", "{reply}");
    assert!(!alive(pid));
}
