//! One persistent OpenSSH connection per pool host (a ControlMaster), and helper calls
//! over it.
//!
//! Hand-written over the system `ssh` rather than the `openssh` crate: that crate runs
//! each command as `ssh -S socket` with the hub's own environment and ssh_config, so
//! `SSH_AUTH_SOCK` or a `ForwardAgent yes` in `/etc/ssh/ssh_config` would reach the
//! session. Here every ssh process gets `-F none` (no config file is read), an empty
//! environment, and the full option set: pinned known_hosts with strict checking, the
//! pool key only, no agent, no forwarding, batch mode.

use crate::error::SpawnError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use steward_protocol::helper::HelperReply;
use tokio::io::AsyncWriteExt;

/// Login details of one host.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub address: String,
    pub user: String,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

#[derive(Debug)]
pub struct Conn {
    pub target: Target,
    ctl: PathBuf,
    log: PathBuf,
    connect_timeout: Duration,
    command_timeout: Duration,
    persist_secs: u64,
    master: tokio::sync::Mutex<()>,
    sessions: tokio::sync::Semaphore,
}

/// Quotes one word for the remote POSIX shell that sshd runs the command with.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Conn {
    pub fn new(
        target: Target,
        control_dir: &Path,
        connect_timeout: Duration,
        command_timeout: Duration,
        persist_secs: u64,
        max_sessions: usize,
    ) -> Conn {
        Conn {
            ctl: control_dir.join(format!("{}.sock", target.host)),
            log: control_dir.join(format!("{}.log", target.host)),
            target,
            connect_timeout,
            command_timeout,
            persist_secs,
            master: tokio::sync::Mutex::new(()),
            sessions: tokio::sync::Semaphore::new(max_sessions),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.target.address, self.target.port)
    }

    /// `ssh` with every option this connection needs and nothing from the environment.
    fn ssh(&self) -> tokio::process::Command {
        let t = &self.target;
        let mut cmd = tokio::process::Command::new("ssh");
        let mut opt = |k: &str, v: &dyn AsRef<std::ffi::OsStr>| {
            let mut o = OsString::from(format!("{k}="));
            o.push(v.as_ref());
            cmd.arg("-o").arg(o);
        };
        opt("BatchMode", &"yes");
        opt("StrictHostKeyChecking", &"yes");
        opt("UserKnownHostsFile", &t.known_hosts);
        opt("GlobalKnownHostsFile", &"/dev/null");
        opt("UpdateHostKeys", &"no");
        opt("CheckHostIP", &"no");
        opt("IdentitiesOnly", &"yes");
        opt("IdentityFile", &t.key);
        opt("IdentityAgent", &"none");
        opt("ForwardAgent", &"no");
        opt("ForwardX11", &"no");
        opt("ClearAllForwardings", &"yes");
        opt("PasswordAuthentication", &"no");
        opt("KbdInteractiveAuthentication", &"no");
        opt(
            "ConnectTimeout",
            &self.connect_timeout.as_secs().max(1).to_string(),
        );
        opt("ServerAliveInterval", &"5");
        opt("ServerAliveCountMax", &"3");
        opt("ControlPath", &self.ctl);
        opt("LogLevel", &"ERROR");
        cmd.args(["-F", "none", "-a", "-x", "-T"])
            .arg("-p")
            .arg(t.port.to_string())
            .arg("-l")
            .arg(&t.user)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .kill_on_drop(true);
        cmd
    }

    /// Opens the shared connection unless one is up. Serialised per host, so concurrent
    /// first calls share one login instead of racing to be master.
    pub async fn ensure_master(&self) -> Result<(), SpawnError> {
        let _g = self.master.lock().await;
        if self.ctl.exists() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.log);
        let mut cmd = self.ssh();
        cmd.args(["-M", "-N", "-f"])
            .arg("-o")
            .arg(format!("ControlPersist={}s", self.persist_secs))
            .arg("-E")
            .arg(&self.log)
            .arg(&self.target.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let bound = self.connect_timeout + Duration::from_secs(5);
        let status = match tokio::time::timeout(bound, cmd.status()).await {
            Err(_) => {
                return Err(SpawnError::HostTimeout {
                    host: self.target.host.clone(),
                    secs: bound.as_secs(),
                    what: format!("opening the ssh connection to {}", self.endpoint()),
                })
            }
            Ok(r) => {
                r.map_err(|e| SpawnError::io("running ssh (is openssh-client installed?)", e))?
            }
        };
        if status.success() && self.ctl.exists() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Err(self.classify(&log))
    }

    /// Runs the shell command `remote` (its words already quoted) with `input` on its
    /// stdin over the shared connection and parses the helper's JSON reply; `helper` is
    /// the helper's path, for messages.
    pub async fn call(
        &self,
        remote: &str,
        helper: &str,
        input: &[u8],
    ) -> Result<HelperReply, SpawnError> {
        self.ensure_master().await?;
        let _permit = self
            .sessions
            .acquire()
            .await
            .map_err(|_| SpawnError::Helper("ssh session limiter closed".into()))?;
        let mut cmd = self.ssh();
        cmd.arg("-o")
            .arg("ControlMaster=no")
            .arg(&self.target.address)
            .arg("--")
            .arg(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| SpawnError::io("running ssh (is openssh-client installed?)", e))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SpawnError::Helper("ssh without stdio pipes".into()));
        };
        let work = async {
            // The helper may refuse before reading (EPIPE); its reply still tells why.
            let _ = stdin.write_all(input).await;
            drop(stdin);
            crate::client::collect(&mut child, &mut stdout, &mut stderr, "ssh").await
        };
        let (out, err, status) = tokio::time::timeout(self.command_timeout, work)
            .await
            .map_err(|_| SpawnError::HostTimeout {
                host: self.target.host.clone(),
                secs: self.command_timeout.as_secs(),
                what: format!("running {helper}"),
            })??;
        if let Ok(reply) = serde_json::from_slice::<HelperReply>(&out) {
            return Ok(reply);
        }
        let stderr = String::from_utf8_lossy(&err);
        let code = status.code();
        if code == Some(255) {
            // ssh itself failed: the connection broke or could not be made. A master
            // that died without removing its socket would make every later call fall
            // back to a fresh login; drop the socket so the next call opens a new one.
            self.forget_dead_master().await;
            return Err(self.classify(&stderr));
        }
        if code == Some(127)
            || code == Some(126)
            || stderr.contains("command not found")
            || stderr.contains("No such file or directory")
        {
            return Err(SpawnError::HelperMissing {
                host: self.target.host.clone(),
                path: helper.to_string(),
                detail: summary(&stderr),
            });
        }
        if stderr.contains("a password is required") {
            return Err(SpawnError::Refused(format!(
                "sudo on host {} refused to run {helper} as root for {}: install the shipped sudoers rule there, naming exactly this helper and its --config",
                self.target.host, self.target.user
            )));
        }
        Err(SpawnError::Helper(format!(
            "{helper} on host {} exited with {status} and no valid reply; stderr: {}",
            self.target.host,
            summary(&stderr)
        )))
    }

    async fn forget_dead_master(&self) {
        let _g = self.master.lock().await;
        if !self.ctl.exists() {
            return;
        }
        let mut check = self.ssh();
        check
            .args(["-O", "check"])
            .arg(&self.target.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let alive = tokio::time::timeout(Duration::from_secs(5), check.status())
            .await
            .is_ok_and(|r| r.is_ok_and(|s| s.success()));
        if !alive {
            let _ = std::fs::remove_file(&self.ctl);
        }
    }

    /// Turns ssh's own error text into the fault it names.
    fn classify(&self, text: &str) -> SpawnError {
        let t = &self.target;
        let detail = summary(text);
        let lower = text.to_ascii_lowercase();
        if lower.contains("host identification has changed")
            || lower.contains("host key verification failed")
            || lower.contains("host key is known")
            || lower.contains("host key for")
        {
            // ssh's warning banner is long; keep the lines that say what was presented
            // and what is pinned.
            let keep: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.starts_with("SHA256:")
                        || l.starts_with("Offending")
                        || l.contains("host key is known")
                        || l.starts_with("Host key verification failed")
                })
                .collect();
            return SpawnError::HostKey {
                host: t.host.clone(),
                address: self.endpoint(),
                known_hosts: t.known_hosts.clone(),
                detail: if keep.is_empty() {
                    detail
                } else {
                    keep.join(" ")
                },
            };
        }
        if lower.contains("permission denied") {
            return SpawnError::Auth {
                host: t.host.clone(),
                user: t.user.clone(),
                key: t.key.clone(),
                detail,
            };
        }
        SpawnError::Unreachable {
            host: t.host.clone(),
            address: self.endpoint(),
            detail: if detail.is_empty() {
                "ssh failed without saying why".into()
            } else {
                detail
            },
        }
    }

    /// Asks the shared connection to exit (hub shutdown), best effort and bounded.
    pub fn close_blocking(&self) {
        if !self.ctl.exists() {
            return;
        }
        let _ = std::process::Command::new("ssh")
            .args(["-F", "none", "-o"])
            .arg({
                let mut o = OsString::from("ControlPath=");
                o.push(&self.ctl);
                o
            })
            .args(["-O", "exit"])
            .arg(&self.target.address)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// ssh's message without the warning banner, on one line, bounded.
fn summary(text: &str) -> String {
    let mut s = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .collect::<Vec<_>>()
        .join("; ");
    if s.len() > 400 {
        let mut cut = 400;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn::new(
            Target {
                host: "h2".into(),
                address: "10.213.0.12".into(),
                user: "steward".into(),
                port: 22,
                key: "/etc/steward/id".into(),
                known_hosts: "/etc/steward/known_hosts".into(),
            },
            Path::new("/run/x"),
            Duration::from_secs(5),
            Duration::from_secs(30),
            60,
            8,
        )
    }

    #[test]
    fn every_ssh_process_pins_keys_and_forwards_nothing() {
        let cmd = conn().ssh();
        let std = cmd.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        for needle in [
            "-F none",
            "-a",
            "-x",
            "StrictHostKeyChecking=yes",
            "UserKnownHostsFile=/etc/steward/known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "UpdateHostKeys=no",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "IdentityFile=/etc/steward/id",
            "IdentityAgent=none",
            "ForwardAgent=no",
            "ClearAllForwardings=yes",
            "PasswordAuthentication=no",
            "-l steward",
            "-p 22",
        ] {
            assert!(joined.contains(needle), "{needle} missing in {joined}");
        }
        // Nothing of the hub's environment (SSH_AUTH_SOCK above all) reaches ssh.
        let envs: Vec<_> = std.get_envs().collect();
        assert_eq!(envs.len(), 1, "{envs:?}");
        assert_eq!(envs[0].0, "PATH");
    }

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn ssh_errors_become_the_fault_they_name() {
        let c = conn();
        let changed = "@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\nHost key verification failed.\n";
        let e = c.classify(changed).to_string();
        assert!(e.contains("host key of h2 (10.213.0.12:22)"), "{e}");
        assert!(e.contains("/etc/steward/known_hosts"), "{e}");
        assert!(e.contains("never auto-accepted"), "{e}");
        let unknown = "No ED25519 host key is known for 10.213.0.12 and you have requested strict checking.\nHost key verification failed.";
        assert!(matches!(c.classify(unknown), SpawnError::HostKey { .. }));
        let refused = "ssh: connect to host 10.213.0.12 port 22: Connection refused";
        let e = c.classify(refused).to_string();
        assert!(e.contains("host h2 (10.213.0.12:22) is unreachable"), "{e}");
        assert!(e.contains("Connection refused"), "{e}");
        let denied = "steward@10.213.0.12: Permission denied (publickey).";
        let e = c.classify(denied).to_string();
        assert!(
            e.contains("ssh login to h2 as steward with key /etc/steward/id"),
            "{e}"
        );
        assert!(matches!(c.classify(""), SpawnError::Unreachable { .. }));
    }
}
