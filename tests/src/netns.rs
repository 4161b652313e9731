//! Test "hosts" for the ssh backend: a bridge (`stw-br0`, 10.213.0.1/24) and N network
//! namespaces (`steward-h1`…) joined to it by veth links, each running its own OpenSSH
//! sshd (own host key, own config, own UTS name) on port 22, all started and torn down
//! here. The namespaces share this machine's filesystem, users and cgroups; only the
//! network (and host name) differs, which is what an ssh client can tell apart.
//!
//! Idempotent: [`Netns::start`] first removes whatever a killed earlier run left (its
//! processes, namespaces, links and state directory), and [`Drop`] removes everything.
//! No default route is set in the namespaces, so nothing started there can reach beyond
//! the test subnet. The names are this project's own and used by no other test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const BRIDGE: &str = "stw-br0";
pub const SUBNET: &str = "10.213.0";
/// Namespaces are `steward-h1`..`steward-h{MAX_HOSTS}`; leftovers of all are removed.
pub const MAX_HOSTS: usize = 8;
pub const STATE_DIR: &str = "/tmp/steward-e2e-netns";

/// One namespace "host".
#[derive(Debug, Clone)]
pub struct NsHost {
    /// The pool's name for it: `h1`, `h2`…
    pub name: String,
    /// The network namespace (and the host name inside it): `steward-h1`…
    pub ns: String,
    pub veth: String,
    pub address: String,
    pub dir: PathBuf,
}

impl NsHost {
    pub fn sshd_config(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("sshd.pid")
    }
    pub fn host_key(&self) -> PathBuf {
        self.dir.join("host_ed25519")
    }
}

/// The running namespaces; everything is removed when dropped.
pub struct Netns {
    pub hosts: Vec<NsHost>,
    pub dir: PathBuf,
    /// Client key the hub logs in with (authorised for `login` on every host).
    pub client_key: PathBuf,
    /// Every host's key as first generated, pinned.
    pub known_hosts: PathBuf,
    pub login: String,
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e} (is it installed? scripts/install-deps.sh)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like [`run`], for cleanup steps whose target may already be gone.
fn quietly(cmd: &str, args: &[&str]) {
    let _ = Command::new(cmd).args(args).output();
}

fn ns_name(i: usize) -> String {
    format!("steward-h{i}")
}

/// A fresh ed25519 key pair without a passphrase at `path` (and `path`.pub).
fn keygen(path: &Path, comment: &str) -> Result<(), String> {
    let p = path.to_string_lossy();
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &p],
    )
    .map(|_| ())
}

/// Kills every process inside namespace `ns` (sshd, sessions, servers) and waits until
/// they are gone (bounded), so the namespace can really go away.
pub fn kill_namespace_processes(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = run("ip", &["netns", "pids", ns])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes what any earlier run left behind: processes, namespaces, links, state.
pub fn teardown() {
    let existing = run("ip", &["netns", "list"]).unwrap_or_default();
    for i in 1..=MAX_HOSTS {
        let ns = ns_name(i);
        if existing
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
        {
            kill_namespace_processes(&ns);
            quietly("ip", &["netns", "del", &ns]);
        }
        quietly("ip", &["link", "del", &format!("stw-v{i}")]);
    }
    quietly("ip", &["link", "del", BRIDGE]);
    let _ = std::fs::remove_dir_all(STATE_DIR);
}

fn wait_tcp(addr: &str, timeout: Duration) -> bool {
    let Ok(sa) = addr.parse::<std::net::SocketAddr>() else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Netns {
    /// Starts `n` hosts whose sshd lets `login` in with a fresh client key. `login` must
    /// exist; it is unlocked for key logins (sshd without PAM refuses a locked account).
    pub fn start(n: usize, login: &str) -> Result<Netns, String> {
        assert!((1..=MAX_HOSTS).contains(&n), "1..={MAX_HOSTS} hosts");
        teardown();
        let dir = PathBuf::from(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{STATE_DIR}: {e}"))?;
        // sshd refuses to start without its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        run("usermod", &["-p", "*", login])?;
        let client_key = dir.join("id_ed25519");
        keygen(&client_key, "steward-e2e")?;
        let pubkey = std::fs::read_to_string(dir.join("id_ed25519.pub"))
            .map_err(|e| format!("client public key: {e}"))?;
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{SUBNET}.1/24"), "dev", BRIDGE],
        )?;
        run("ip", &["link", "set", BRIDGE, "up"])?;
        let mut hosts = vec![];
        for i in 1..=n {
            let h = NsHost {
                name: format!("h{i}"),
                ns: ns_name(i),
                veth: format!("stw-v{i}"),
                address: format!("{SUBNET}.{}", 10 + i),
                dir: dir.join(ns_name(i)),
            };
            std::fs::create_dir_all(h.dir.join("keys")).map_err(|e| e.to_string())?;
            run("ip", &["netns", "add", &h.ns])?;
            run(
                "ip",
                &[
                    "link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns", &h.ns,
                ],
            )?;
            run("ip", &["link", "set", &h.veth, "master", BRIDGE, "up"])?;
            run(
                "ip",
                &[
                    "-n",
                    &h.ns,
                    "addr",
                    "add",
                    &format!("{}/24", h.address),
                    "dev",
                    "eth0",
                ],
            )?;
            run("ip", &["-n", &h.ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &h.ns, "link", "set", "lo", "up"])?;
            std::fs::write(h.dir.join("keys").join(login), &pubkey).map_err(|e| e.to_string())?;
            std::fs::write(
                h.sshd_config(),
                format!(
                    "Port 22\nListenAddress 0.0.0.0\nHostKey {key}\nPidFile {pid}\n\
                     AuthorizedKeysFile {keys}/%u\nStrictModes no\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin no\n\
                     AllowUsers {login}\nAllowAgentForwarding no\nAllowTcpForwarding no\n\
                     X11Forwarding no\nMaxSessions 10\nMaxStartups 200:30:400\n",
                    key = h.host_key().display(),
                    pid = h.pid_file().display(),
                    keys = h.dir.join("keys").display(),
                ),
            )
            .map_err(|e| e.to_string())?;
            hosts.push(h);
        }
        let net = Netns {
            hosts,
            dir: dir.clone(),
            client_key,
            known_hosts: dir.join("known_hosts"),
            login: login.to_string(),
        };
        let mut pinned = String::new();
        for i in 0..n {
            net.new_host_key(i)?;
            net.start_sshd(i)?;
            let host = &net.hosts[i];
            let key = std::fs::read_to_string(host.dir.join("host_ed25519.pub"))
                .map_err(|e| e.to_string())?;
            let mut parts = key.split_whitespace();
            let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
                return Err(format!("bad host key file for {}", host.ns));
            };
            pinned.push_str(&format!("{} {kind} {blob}\n", host.address));
        }
        std::fs::write(&net.known_hosts, pinned).map_err(|e| e.to_string())?;
        Ok(net)
    }

    /// Replaces host `i`'s key (sshd must be restarted to use it).
    pub fn new_host_key(&self, i: usize) -> Result<(), String> {
        let h = &self.hosts[i];
        let _ = std::fs::remove_file(h.host_key());
        let _ = std::fs::remove_file(h.dir.join("host_ed25519.pub"));
        keygen(&h.host_key(), &h.ns)
    }

    /// Starts host `i`'s sshd in its namespace (with its own host name) and waits until
    /// it accepts connections.
    pub fn start_sshd(&self, i: usize) -> Result<(), String> {
        let h = &self.hosts[i];
        let log = h.dir.join("sshd.log");
        // nsenter, not `ip netns exec`: that one also remounts /sys for the namespace,
        // which hides the cgroup hierarchies the helper must see.
        run(
            "nsenter",
            &[
                &format!("--net=/run/netns/{}", h.ns),
                "unshare",
                "--uts",
                "sh",
                "-c",
                &format!(
                    "hostname {} && exec /usr/sbin/sshd -f {} -E {}",
                    h.ns,
                    h.sshd_config().display(),
                    log.display()
                ),
            ],
        )?;
        if wait_tcp(&format!("{}:22", h.address), Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(format!(
                "sshd in {} did not accept connections within 10 s; log: {}",
                h.ns,
                std::fs::read_to_string(&log).unwrap_or_default()
            ))
        }
    }

    /// Takes host `i` down as a crash would: every process in it dies (sshd, sessions,
    /// the servers it ran) and nothing answers on its address any more.
    pub fn take_down(&self, i: usize) {
        kill_namespace_processes(&self.hosts[i].ns);
    }

    /// Restarts host `i`'s sshd with a new host key, as a reinstalled (or impersonated)
    /// host would present; the pinned known_hosts keeps the old key.
    pub fn rekey(&self, i: usize) -> Result<(), String> {
        self.take_down(i);
        self.new_host_key(i)?;
        self.start_sshd(i)
    }

    pub fn host(&self, name: &str) -> &NsHost {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }

    /// The inode of namespace `ns`, to check which "host" a process runs on.
    pub fn netns_inode(ns: &str) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(Path::new("/run/netns").join(ns))
            .ok()
            .map(|m| m.ino())
    }
}

/// Which namespace `pid` runs in (the inode of its network namespace).
pub fn pid_netns_inode(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

impl Drop for Netns {
    fn drop(&mut self) {
        teardown();
    }
}

/// A file in /etc/sudoers.d, checked with visudo, removed when dropped.
pub struct SudoRule(PathBuf);

impl SudoRule {
    /// Lets `login` run exactly `helper --config C` as root for each of `configs`.
    pub fn install(
        name: &str,
        login: &str,
        helper: &Path,
        configs: &[PathBuf],
    ) -> Result<SudoRule, String> {
        use std::os::unix::fs::PermissionsExt;
        let cmds: Vec<String> = configs
            .iter()
            .map(|c| format!("{} --config {}", helper.display(), c.display()))
            .collect();
        let text = format!(
            "Defaults:{login} !requiretty, env_reset, !lecture, !mail_badpass\n\
             {login} ALL=(root) NOPASSWD: {}\n",
            cmds.join(", ")
        );
        let path = PathBuf::from(format!("/etc/sudoers.d/{name}"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440))
            .map_err(|e| e.to_string())?;
        let rule = SudoRule(path);
        run("visudo", &["-cf", &rule.0.to_string_lossy()])?;
        Ok(rule)
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
