//! The batch script and sbatch command line for one server. Pure functions: nothing
//! here runs anything, so every byte that reaches sbatch can be unit-tested.
//!
//! The script is written to sbatch's stdin, not passed with `--wrap`, so no part of it
//! is ever a command-line string. It is `/bin/sh` because Slurm runs batch scripts through
//! their `#!` line and has no way to pass an argv; every word we put in it is
//! single-quoted by [`sh_quote`], which is provably inert in POSIX sh (inside single
//! quotes no character is special except `'` itself, which is closed, escaped and
//! reopened), and NUL bytes are refused before we get here.

use crate::config::Limits;
use crate::slurm::config::SlurmProfile;
use std::path::Path;

/// Quotes `s` as one POSIX sh word.
pub fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// What the script needs to know.
pub struct ScriptSpec<'a> {
    pub owner: &'a str,
    pub server: &'a str,
    pub executable: &'a Path,
    pub args: &'a [String],
    /// The file holding the server's stdin, if it has one.
    pub bootstrap: Option<&'a Path>,
}

/// The batch script: log to the owner's home, take the secrets as stdin and unlink
/// them before the server (the owner's own code) runs, then exec the server.
pub fn job_script(spec: &ScriptSpec<'_>) -> String {
    let mut s = String::from("#!/bin/sh\n");
    s += &format!(
        "# Steward UI server {}/{}, written by steward-spawn.\n",
        spec.owner, spec.server
    );
    s += "umask 077\n";
    // Slurm's own --output is /dev/null: the log directory may not exist before the job
    // runs, and a missing --output directory makes the job fail before this line.
    s += &format!(
        "mkdir -p \"$HOME/.steward/logs\" && exec >>\"$HOME/.steward/logs/\"{}.slurm.log 2>&1\n",
        sh_quote(spec.server)
    );
    match spec.bootstrap {
        Some(b) => {
            let q = sh_quote(&b.to_string_lossy());
            s += &format!(
                "exec 0<{q} || {{ echo 'steward: bootstrap file missing (cancelled or already used)' >&2; exit 111; }}\n"
            );
            s += &format!("rm -f {q}\n");
        }
        None => s += "exec 0</dev/null\n",
    }
    s += "exec";
    s += " ";
    s += &sh_quote(&spec.executable.to_string_lossy());
    for a in spec.args {
        s += " ";
        s += &sh_quote(a);
    }
    s += "\n";
    s
}

/// sbatch's options for this server (the script comes on stdin).
pub fn sbatch_args(
    job_name: &str,
    home: &Path,
    limits: &Limits,
    gpus: Option<u32>,
    slurm: &SlurmProfile,
) -> Vec<String> {
    let mut a = vec![
        "--parsable".to_string(),
        format!("--job-name={job_name}"),
        // The environment sbatch sees is the clean one the helper built; pass exactly it.
        "--export=ALL".into(),
        format!("--chdir={}", home.display()),
        "--output=/dev/null".into(),
        "--error=/dev/null".into(),
        // A UI server is not a batch computation: restarting it elsewhere behind the
        // hub's back would hand out a second copy of its secrets (which are gone anyway).
        "--no-requeue".into(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
    ];
    if let Some(cpu) = limits.cpu {
        a.push(format!("--cpus-per-task={}", (cpu.ceil() as u64).max(1)));
    }
    if let Some(mem) = limits.memory {
        a.push(format!("--mem={}M", mem.div_ceil(1 << 20).max(1)));
    }
    if let Some(g) = gpus.filter(|g| *g > 0) {
        a.push(format!("--gres=gpu:{g}"));
    }
    if let Some(t) = &slurm.time_limit {
        a.push(format!("--time={t}"));
    }
    if let Some(p) = &slurm.partition {
        a.push(format!("--partition={p}"));
    }
    if let Some(acc) = &slurm.account {
        a.push(format!("--account={acc}"));
    }
    if let Some(q) = &slurm.qos {
        a.push(format!("--qos={q}"));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The real shell gives back exactly the words we quoted.
    #[test]
    fn quoting_round_trips_through_sh() {
        let words = [
            "plain",
            "",
            "it's",
            "'",
            "''",
            "$(id)",
            "`id`",
            "a b\tc\nd",
            "\\",
            "\"$HOME\"",
            "*",
            "; rm -rf /",
            "-e",
            "é ü 日本",
        ];
        let mut script = String::from("printf '%s\\0'");
        for w in words {
            script += " ";
            script += &sh_quote(w);
        }
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(out.status.success());
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .filter(|_| true)
            .map(|w| String::from_utf8(w.to_vec()).unwrap())
            .collect();
        let mut want: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        want.push(String::new()); // after the final NUL
        assert_eq!(got, want);
    }

    #[test]
    fn script_execs_the_quoted_server_after_unlinking_its_secrets() {
        let args = vec!["--port".to_string(), "0".into(), "x'; id; '".into()];
        let s = job_script(&ScriptSpec {
            owner: "alice",
            server: "default",
            executable: Path::new("/opt/steward/uiserver"),
            args: &args,
            bootstrap: Some(Path::new("/var/lib/b/alice/default.1f")),
        });
        assert!(s.starts_with("#!/bin/sh\n"));
        let exec_in = s.find("exec 0<'/var/lib/b/alice/default.1f'").unwrap();
        let rm = s.find("rm -f '/var/lib/b/alice/default.1f'").unwrap();
        let exec = s
            .find("exec '/opt/steward/uiserver' '--port' '0' 'x'\\''; id; '\\'''")
            .unwrap();
        assert!(exec_in < rm && rm < exec, "{s}");
    }

    #[test]
    fn resources_come_from_the_profile() {
        let limits = Limits {
            memory: Some((1 << 30) + 1),
            cpu: Some(1.5),
            pids: Some(10),
            io: vec![],
        };
        let slurm = SlurmProfile {
            partition: Some("gpu".into()),
            account: Some("proj1".into()),
            qos: None,
            time_limit: Some("8:00:00".into()),
        };
        let a = sbatch_args(
            "steward:alice:default",
            Path::new("/home/alice"),
            &limits,
            Some(2),
            &slurm,
        );
        for want in [
            "--job-name=steward:alice:default",
            "--cpus-per-task=2",
            "--mem=1025M",
            "--gres=gpu:2",
            "--time=8:00:00",
            "--partition=gpu",
            "--account=proj1",
            "--chdir=/home/alice",
            "--parsable",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--qos")));
    }
}
