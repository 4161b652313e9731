//! Running a Slurm client command with a deadline. Slurm's clients retry for a long
//! time when slurmctld is down; a poller or a submit must give up and say "unknown"
//! instead of hanging the hub.
//!
//! Synchronous on purpose: the privileged helper has no async runtime, and the hub
//! calls the poller from a blocking task. The reader threads start only after the
//! child was forked, so the helper is still single-threaded when it forks.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Largest stdout/stderr kept from one command (a queue of many thousand jobs fits).
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("running {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {secs:.1} s (killed)")]
    Timeout { program: String, secs: f64 },
}

/// Runs `cmd` (stdio is set here), feeding `stdin`, killing it at `timeout`.
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, RunError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            // A child that exits without reading gives EPIPE: its exit status says why.
            Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(MAX_OUTPUT_BYTES).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let Some(status) = status else {
        // Not joined: a grandchild that kept the pipes open would block us forever.
        return Err(RunError::Timeout {
            program,
            secs: timeout.as_secs_f64(),
        });
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The lines of a Slurm client's stderr worth showing a person: its `error:` lines
/// (plugin chatter such as PMIx load warnings dropped), or everything if there are none.
pub fn slurm_message(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("error:") || l.contains("fatal:"))
        .collect();
    let text = if errors.is_empty() {
        stderr.trim().to_string()
    } else {
        errors.join("; ")
    };
    text.chars().take(2000).collect()
}

/// Whether Slurm's message means "the controller did not answer" (try again later)
/// rather than "the controller said no".
pub fn controller_unreachable(message: &str) -> bool {
    [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Zero Bytes were transmitted",
        "Connection refused",
        "Communication connection failure",
    ]
    .iter()
    .any(|n| message.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_stdin_and_timeout() {
        let o = run_bounded(
            Command::new("/bin/sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some(b"hello"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.stdout, "hello");
        assert_eq!(o.stderr, "err\n");
        assert_eq!(o.status.code(), Some(3));
        let e = run_bounded(
            Command::new("/bin/sleep").arg("5"),
            None,
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(matches!(e, RunError::Timeout { .. }), "{e}");
        let e = run_bounded(
            &mut Command::new("/nonexistent/sbatch"),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/sbatch"), "{e}");
    }

    #[test]
    fn slurm_messages() {
        let m = slurm_message(
            "sbatch: plugin noise\nsbatch: error: Batch job submission failed: Invalid partition name specified\n",
        );
        assert_eq!(
            m,
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        );
        assert!(!controller_unreachable(&m));
        assert!(controller_unreachable(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
    }
}
