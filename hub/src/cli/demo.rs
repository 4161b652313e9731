//! `steward demo`: a working hub on one machine with demo users, policy and workflows.
//!
//! Everything goes under one data directory (default /var/lib/steward-demo); the only
//! things outside it are the demo Unix accounts (alice, bob, carl, group steward-ops),
//! their `~/.steward` files and /etc/pam.d/steward, which are what a real site has too.

use crate::config::HubConfig;
use rand::Rng;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const DEMO_USERS: [&str; 3] = ["alice", "bob", "carl"];
pub const DEMO_GROUP: &str = "steward-ops";
const PAM_FILE: &str = include_str!("../../../etc/pam.d/steward");

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub listen: std::net::SocketAddr,
    pub credentials_file: Option<PathBuf>,
    /// Tests only: a file whose integer content (seconds) is added to the hub's clock.
    pub clock_offset_file: Option<PathBuf>,
    /// `--cylc`: the Cylc venv (cylc-flow + cylc-uiserver). Every server is then the
    /// real Cylc UI server (`cylc hubapp`), and each demo user can run real workflows.
    pub cylc_venv: Option<PathBuf>,
    /// `--database-url`: PostgreSQL instead of SQLite in data_dir.
    pub database_url: Option<String>,
}

/// The profile `--cylc` starts servers on.
pub const CYLC_PROFILE: &str = "cylc";

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| anyhow::anyhow!("chmod {}: {e}", path.display()))
}

fn write(path: &Path, content: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, content)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    set_mode(path, mode)
}

/// Demo workflows: short real tasks so the views show running, waiting and done states.
fn demo_workflows(user: &str) -> Vec<(String, String)> {
    let forecast = r#"description = "A small forecast: fetch observations, run the model, post-process"
cycles = ["1", "2", "3"]

[tasks.fetch_obs]
script = "echo fetching observations for cycle $CYCLE_POINT; sleep 3; echo done"

[tasks.run_model]
script = "for i in 1 2 3 4 5; do echo step $i; sleep 2; done"
after = ["fetch_obs"]
env = { MODEL_RESOLUTION = "25km" }

[tasks.post_process]
script = "echo plotting; sleep 2"
after = ["run_model"]
"#;
    let housekeeping = r#"description = "Housekeeping: archive and tidy"
cycles = ["1"]

[tasks.archive]
script = "echo archiving; sleep 5"

[tasks.tidy]
script = "echo tidying; sleep 1"
after = ["archive"]
"#;
    vec![
        (format!("{user}_forecast"), forecast.to_string()),
        ("housekeeping".to_string(), housekeeping.to_string()),
    ]
}

fn ensure_user(name: &str) -> anyhow::Result<()> {
    if nix::unistd::User::from_name(name)?.is_none() {
        run(Command::new("useradd").args(["-m", "-s", "/bin/bash", name]))?;
    }
    // A home left by an earlier demo user of the same name under another uid (the
    // account deleted and made again) is kept by `useradd -m`: give it to the new one.
    let user = nix::unistd::User::from_name(name)?
        .ok_or_else(|| anyhow::anyhow!("useradd {name} made no account"))?;
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(&user.dir).is_ok_and(|m| m.uid() != user.uid.as_raw()) {
        chown_tree(&user.dir, &user)?;
    }
    Ok(())
}

fn chown_tree(path: &Path, user: &nix::unistd::User) -> anyhow::Result<()> {
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.uid, user.gid))
        .arg(path))
}

/// Creates users, files and config; returns the config path and the credentials.
pub fn prepare(opts: &DemoOptions) -> anyhow::Result<(PathBuf, Vec<(String, String)>)> {
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("no executable directory"))?;
    prepare_from(opts, &exe_dir)
}

/// [`prepare`] with the helper and uiserver binaries taken from `exe_dir`.
pub fn prepare_from(
    opts: &DemoOptions,
    exe_dir: &Path,
) -> anyhow::Result<(PathBuf, Vec<(String, String)>)> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!(
            "steward demo must run as root: it creates demo Unix users and starts servers as them"
        );
    }
    let d = &opts.data_dir;
    std::fs::create_dir_all(d)?;
    // 0711: users must reach bin/ to exec their server, but may not list or read the rest.
    set_mode(d, 0o711)?;

    if !Path::new("/etc/pam.d/steward").exists() {
        write(Path::new("/etc/pam.d/steward"), PAM_FILE, 0o644)?;
    }
    if nix::unistd::Group::from_name(DEMO_GROUP)?.is_none() {
        run(Command::new("groupadd").arg(DEMO_GROUP))?;
    }
    let mut creds = vec![];
    for name in DEMO_USERS {
        ensure_user(name)?;
        let pw = random_password();
        let mut child = Command::new("chpasswd")
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        {
            use std::io::Write;
            let stdin = child
                .stdin
                .as_mut()
                .ok_or_else(|| anyhow::anyhow!("chpasswd stdin"))?;
            writeln!(stdin, "{name}:{pw}")?;
        }
        if !child.wait()?.success() {
            anyhow::bail!("chpasswd failed for {name}");
        }
        creds.push((name.to_string(), pw));
    }
    run(Command::new("usermod").args(["-aG", DEMO_GROUP, "bob"]))?;

    for name in DEMO_USERS {
        let user = nix::unistd::User::from_name(name)?
            .ok_or_else(|| anyhow::anyhow!("user {name} vanished"))?;
        let steward_dir = user.dir.join(".steward");
        for (wf, flow) in demo_workflows(name) {
            let path = steward_dir.join("workflows").join(&wf).join("flow.toml");
            if !path.exists() {
                write(&path, &flow, 0o644)?;
            }
        }
        if let Some(venv) = &opts.cylc_venv {
            // Task jobs run under `bash -l` without the venv on PATH.
            let global = user.dir.join(".cylc/flow/global.cylc");
            write(
                &global,
                &format!(
                    "# Written by `steward demo --cylc`.\n[platforms]\n    [[localhost]]\n        cylc path = {}\n",
                    venv.join("bin").display()
                ),
                0o644,
            )?;
            chown_tree(&user.dir.join(".cylc"), &user)?;
        }
        if name == "alice" && !steward_dir.join("policy.toml").exists() {
            let policy = format!(
                "# alice lets the operations group control her forecast, and everyone read it.\n[grants]\n\"group:{DEMO_GROUP}\" = [\"READ\", \"CONTROL\"]\n\"*\" = [\"READ\"]\n"
            );
            write(&steward_dir.join("policy.toml"), &policy, 0o644)?;
        }
        chown_tree(&steward_dir, &user)?;
    }

    let bin = d.join("bin");
    std::fs::create_dir_all(&bin)?;
    set_mode(&bin, 0o755)?;
    for exe in ["steward-spawn", "steward-uiserver"] {
        let src = exe_dir.join(exe);
        if !src.exists() {
            anyhow::bail!(
                "{} not found next to steward; build the whole workspace (cargo build --workspace)",
                src.display()
            );
        }
        let dst = bin.join(exe);
        let tmp = bin.join(format!(".{exe}.tmp"));
        std::fs::copy(&src, &tmp)?;
        set_mode(&tmp, 0o755)?;
        std::fs::rename(&tmp, &dst)?;
    }

    let site = format!(
        "# Demo site policy: everyone may read everyone's workflows; the operations group may\n# be granted CONTROL by owners, never clean.\n[owners.\"*\".\"*\"]\ndefault = \"READ\"\n\n[owners.\"*\".\"group:{DEMO_GROUP}\"]\ndefault = [\"READ\"]\nlimit = [\"READ\", \"CONTROL\", \"!clean\"]\n"
    );
    write(&d.join("policy/site.toml"), &site, 0o644)?;
    set_mode(&d.join("policy"), 0o755)?;

    let mut spawn = format!(
        "# steward-spawn config for the demo\nmin_uid = 1000\nlog_dir = \"{logs}\"\n{cylc_top}\n[executables]\nuiserver = \"{bin}/steward-uiserver\"\n{cylc_exe}\n[cgroup]\nprefix = \"steward-demo\"\n\n[user_limits]\nmemory = \"2G\"\npids = 1024\ncpu = 2.0\n\n[profiles.default]\nmemory = \"1G\"\ncpu = 1.0\npids = 512\n",
        logs = d.join("logs").display(),
        bin = bin.display(),
        cylc_top = match &opts.cylc_venv {
            Some(_) => format!(
                "runtime_dir = \"{}\"\nenv_allow = [\"LANG\", \"LC_*\", \"TZ\", \"STEWARD_*\", \"JUPYTERHUB_*\", \"JPY_API_TOKEN\", \"CYLC_SITE_CONF_PATH\"]\n",
                d.join("run").display()
            ),
            None => String::new(),
        },
        cylc_exe = match &opts.cylc_venv {
            Some(v) => format!("cylc = \"{}\"\n", v.join("bin/cylc").display()),
            None => String::new(),
        },
    );
    if opts.cylc_venv.is_some() {
        spawn.push_str(&format!(
            "\n[profiles.{CYLC_PROFILE}]\ndescription = \"the real Cylc UI server (cylc hubapp)\"\nmemory = \"1G\"\ncpu = 1.0\npids = 512\n"
        ));
    }
    write(&d.join("spawn.toml"), &spawn, 0o644)?;

    let tls = d.join("tls");
    std::fs::create_dir_all(&tls)?;
    set_mode(&tls, 0o700)?;
    if !tls.join("hub.key").exists() {
        let (cert, key, ca) =
            crate::pki::ca::self_signed_public(vec!["127.0.0.1".into(), "localhost".into()])?;
        write(&tls.join("hub.crt"), &cert, 0o644)?;
        write(&tls.join("ca.crt"), &ca, 0o644)?;
        write(&tls.join("hub.key"), &key, 0o600)?;
    }

    let port = opts.listen.port();
    let host = match opts.listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip => ip.to_string(),
    };
    let config = format!(
        r#"# Generated by `steward demo`.
public_url = "https://{host}:{port}"
listen = "{listen}"
data_dir = "{data}/state"
admins = ["carl"]

[tls]
cert = "{data}/tls/hub.crt"
key = "{data}/tls/hub.key"

[policy]
site = "{data}/policy/site.toml"

[spawner]
helper = "{data}/bin/steward-spawn"
config = "{data}/spawn.toml"

[audit]
dir = "{data}/audit"

[elevation]
# The operations group may hold raised privileges longer than the default 15 minutes.
group_secs = {{ "{DEMO_GROUP}" = 1800 }}

[uiserver]
{uiserver}
{testing}"#,
        listen = opts.listen,
        data = d.display(),
        // A Cylc UI server starts on the first visit (each is a Python process of
        // ~150 MB); Steward's own are light enough to have ready.
        uiserver = match &opts.cylc_venv {
            Some(_) => format!(
                "prestart = []\ndefault_profile = \"{CYLC_PROFILE}\"\n\n[singleuser]\nprofiles = [\"{CYLC_PROFILE}\"]\nruntime_dir = \"{run}\"\nsite_conf_dir = \"{site}\"\napi_listen = \"127.0.0.1:0\"\n",
                run = d.join("run").display(),
                site = d.join("cylc-site").display(),
            ),
            None => "prestart = [\"alice\", \"bob\", \"carl\"]\n".to_string(),
        },
        testing = match &opts.clock_offset_file {
            Some(p) => format!("\n[testing]\nclock_offset_file = \"{}\"\n", p.display()),
            None => String::new(),
        } + &match &opts.database_url {
            // Quoted as TOML, whatever the URL holds.
            Some(url) => format!("\n[database]\nurl = {}\n", toml::Value::String(url.clone())),
            None => String::new(),
        }
    );
    let config_path = d.join("steward.toml");
    write(&config_path, &config, 0o644)?;
    HubConfig::load(&config_path)?;
    Ok((config_path, creds))
}

/// The Cylc venv `--cylc` uses, checked to hold `cylc`.
pub fn cylc_venv() -> anyhow::Result<PathBuf> {
    let venv = std::env::var_os("STEWARD_CYLC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/steward/cylc-venv"));
    if !venv.join("bin/cylc").exists() {
        anyhow::bail!(
            "--cylc needs cylc-flow and cylc-uiserver in {}: run scripts/install-deps.sh (or set STEWARD_CYLC_VENV)",
            venv.display()
        );
    }
    Ok(venv)
}

/// The real workflow `--cylc` plays as alice.
pub const CYLC_WORKFLOW: &str = "demo-forecast";

const CYLC_FLOW: &str = "[scheduler]\n    allow implicit tasks = True\n[scheduling]\n    cycling mode = integer\n    initial cycle point = 1\n    runahead limit = P1\n    [[graph]]\n        P1 = \"get_obs[-P1] => get_obs => model => products\"\n[runtime]\n    [[get_obs]]\n        script = sleep 20\n    [[model]]\n        script = sleep 60\n    [[products]]\n        script = sleep 10\n";

/// `cylc ARGS` as alice with a clean environment (her HOME, the venv first on PATH).
fn cylc_as_alice(venv: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let user = nix::unistd::User::from_name("alice")?
        .ok_or_else(|| anyhow::anyhow!("user alice is missing"))?;
    Command::new("runuser")
        .args(["-u", "alice", "--", "env", "-i"])
        .arg(format!("HOME={}", user.dir.display()))
        .arg("USER=alice")
        .arg(format!("PATH={}:/usr/bin:/bin", venv.join("bin").display()))
        .arg("cylc")
        .args(args)
        .current_dir(&user.dir)
        .output()
        .map_err(|e| anyhow::anyhow!("running cylc as alice: {e}"))
}

/// Installs (first time) and plays alice's real workflow.
pub fn play_cylc_workflow(venv: &Path) -> anyhow::Result<()> {
    let user = nix::unistd::User::from_name("alice")?
        .ok_or_else(|| anyhow::anyhow!("user alice is missing"))?;
    if !user.dir.join("cylc-run").join(CYLC_WORKFLOW).exists() {
        let src = user.dir.join("cylc-src").join(CYLC_WORKFLOW);
        write(&src.join("flow.cylc"), CYLC_FLOW, 0o644)?;
        chown_tree(&user.dir.join("cylc-src"), &user)?;
        let out = cylc_as_alice(
            venv,
            &[
                "install",
                "--no-run-name",
                &format!("--workflow-name={CYLC_WORKFLOW}"),
                &src.display().to_string(),
            ],
        )?;
        if !out.status.success() {
            anyhow::bail!(
                "cylc install as alice failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = cylc_as_alice(venv, &["play", CYLC_WORKFLOW])?;
    // Already running (a demo restarted without Ctrl-C) is fine.
    if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("already running") {
        anyhow::bail!(
            "cylc play as alice failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Stops alice's workflow and kills its jobs (Ctrl-C leaves nothing running).
pub fn stop_cylc_workflow(venv: &Path) {
    let _ = cylc_as_alice(venv, &["stop", "--kill", CYLC_WORKFLOW]);
}

/// Stops every server the demo hub started, and (demo only) the demo users' workflows:
/// Ctrl-C leaves nothing running. A real hub never does the latter.
pub async fn stop_all(state: &crate::state::AppState) {
    for s in state.servers.all() {
        let _ = state.servers.stop(&s.owner).await;
    }
    for user in DEMO_USERS {
        let _ = state
            .servers
            .spawner
            .call(&steward_protocol::helper::HelperRequest::Stop {
                user: user.to_string(),
                server: steward_spawner::cgroup::WORKFLOWS_CGROUP.to_string(),
                grace_secs: Some(1),
            })
            .await;
    }
}
