//! The hub's side of the helper: run `steward-spawn` once per request, directly (hub is
//! root) or through `sudo -n` (hub is an unprivileged system user with the shipped rule).

use crate::error::SpawnError;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use steward_protocol::helper::{HelperReply, HelperRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpawnMode {
    /// The hub runs as root and execs the helper itself.
    Direct,
    /// The hub runs unprivileged and uses `sudo -n` with the rule in etc/sudoers.d.
    Sudo,
}

#[derive(Debug, Clone)]
pub struct SpawnerClient {
    pub helper: PathBuf,
    pub config: Option<PathBuf>,
    pub mode: SpawnMode,
    pub timeout: Duration,
}

/// Largest reply accepted from the helper (a `read_user_file` of 1 MiB plus framing).
pub(crate) const MAX_REPLY_BYTES: u64 = 4 * 1024 * 1024;

impl SpawnerClient {
    pub fn new(helper: impl Into<PathBuf>, config: Option<PathBuf>, mode: SpawnMode) -> Self {
        SpawnerClient {
            helper: helper.into(),
            config,
            mode,
            timeout: Duration::from_secs(30),
        }
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = match self.mode {
            SpawnMode::Direct => tokio::process::Command::new(&self.helper),
            SpawnMode::Sudo => {
                let mut c = tokio::process::Command::new("sudo");
                c.arg("-n").arg(&self.helper);
                c
            }
        };
        if let Some(cfg) = &self.config {
            cmd.arg("--config").arg(cfg);
        }
        // The helper builds each server's environment itself; give it nothing of ours.
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Sends one request and returns the helper's reply (which may be an error reply).
    pub async fn call(&self, req: &HelperRequest) -> Result<HelperReply, SpawnError> {
        let body = serde_json::to_vec(req)
            .map_err(|e| SpawnError::Helper(format!("encoding request: {e}")))?;
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| SpawnError::io(format!("running {}", self.helper.display()), e))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| SpawnError::Helper("no stdin pipe".into()))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| SpawnError::Helper("no stdout pipe".into()))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| SpawnError::Helper("no stderr pipe".into()))?;
        let work = async {
            stdin
                .write_all(&body)
                .await
                .map_err(|e| SpawnError::io("writing to the helper", e))?;
            drop(stdin);
            collect(&mut child, &mut stdout, &mut stderr, "the helper").await
        };
        let (out, err, status) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| SpawnError::Timeout(self.timeout.as_secs()))??;
        match serde_json::from_slice::<HelperReply>(&out) {
            Ok(reply) => Ok(reply),
            Err(_) => Err(SpawnError::Helper(format!(
                "{} exited with {status} and no valid reply; stderr: {}",
                self.helper.display(),
                String::from_utf8_lossy(&err).trim()
            ))),
        }
    }
}

/// Reads a child's stdout (bounded, the reply) and stderr (bounded, for messages) to the
/// end and waits for it: the one way both the local client and the ssh backend take an
/// answer from a helper process.
pub(crate) async fn collect(
    child: &mut tokio::process::Child,
    stdout: &mut (impl tokio::io::AsyncRead + Unpin),
    stderr: &mut (impl tokio::io::AsyncRead + Unpin),
    what: &str,
) -> Result<(Vec<u8>, Vec<u8>, std::process::ExitStatus), SpawnError> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut out_limited = stdout.take(MAX_REPLY_BYTES);
    let mut err_limited = stderr.take(64 * 1024);
    let (r1, _) = tokio::join!(
        out_limited.read_to_end(&mut out),
        err_limited.read_to_end(&mut err)
    );
    r1.map_err(|e| SpawnError::io(format!("reading the reply of {what}"), e))?;
    let status = child
        .wait()
        .await
        .map_err(|e| SpawnError::io(format!("waiting for {what}"), e))?;
    Ok((out, err, status))
}
