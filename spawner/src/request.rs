//! Decoding and checking a helper request before anything touches the system.
//!
//! This is the part of the privileged helper that reads hostile bytes first, so it is
//! kept free of syscalls (no user lookup, no cgroup, no exec): `fuzz/` runs it on
//! arbitrary input. Passing here is necessary, never sufficient — the verbs in
//! [`crate::helper`] still look the user up, apply the uid floor and check ownership.

use crate::config::HelperConfig;
use crate::error::SpawnError;
use std::path::{Component, Path};
use steward_protocol::helper::HelperRequest;

/// Largest request the helper reads from stdin.
pub const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// Parses one request; too large or malformed JSON is a bad request naming why.
pub fn decode(buf: &[u8]) -> Result<HelperRequest, SpawnError> {
    if buf.len() as u64 > MAX_REQUEST_BYTES {
        return Err(SpawnError::TooLarge(format!(
            "request over {MAX_REQUEST_BYTES} bytes"
        )));
    }
    serde_json::from_slice(buf).map_err(|e| SpawnError::BadRequest(format!("request JSON: {e}")))
}

pub fn server_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn user_ok(pattern: &regex::Regex, name: &str) -> Result<(), SpawnError> {
    if pattern.is_match(name) {
        Ok(())
    } else {
        Err(SpawnError::Refused(format!(
            "user name {name:?} does not match the configured pattern"
        )))
    }
}

fn server_ok(server: &str) -> Result<(), SpawnError> {
    if server_name_ok(server) {
        Ok(())
    } else {
        Err(SpawnError::BadRequest(format!(
            "server name {server:?}: use letters, digits, '_', '-', '.' (at most 64)"
        )))
    }
}

pub fn cluster_ok(config: &HelperConfig, cluster: &str) -> Result<(), SpawnError> {
    if config.slurm.contains_key(cluster) {
        return Ok(());
    }
    let known: Vec<_> = config.slurm.keys().cloned().collect();
    Err(SpawnError::BadRequest(format!(
        "unknown Slurm cluster {cluster:?}; known: {}",
        if known.is_empty() {
            "none (add a [slurm.<name>] table to the helper config)".to_string()
        } else {
            known.join(", ")
        }
    )))
}

/// A path under the user's home: relative, no `..`, `.` or root, no NUL.
pub fn relative_path_ok(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Every check on `req` that needs no system call: names against the configured
/// pattern, server names, the executable key against the allow-list, the profile,
/// payload sizes and relative paths.
pub fn precheck(
    config: &HelperConfig,
    user_pattern: &regex::Regex,
    req: &HelperRequest,
) -> Result<(), SpawnError> {
    match req {
        HelperRequest::Start(s) => {
            user_ok(user_pattern, &s.user)?;
            server_ok(&s.server)?;
            if s.server == crate::cgroup::WORKFLOWS_CGROUP {
                return Err(SpawnError::BadRequest(format!(
                    "server name {:?} is reserved",
                    s.server
                )));
            }
            if !config.executables.contains_key(&s.executable) {
                return Err(SpawnError::Refused(format!(
                    "executable {:?} is not in the allow-list",
                    s.executable
                )));
            }
            let profile = s.profile.as_deref().unwrap_or("default");
            if !config.profiles.contains_key(profile) {
                let known: Vec<_> = config.profiles.keys().cloned().collect();
                return Err(SpawnError::BadRequest(format!(
                    "unknown profile {profile:?}; known: {}",
                    known.join(", ")
                )));
            }
            if s.stdin
                .as_ref()
                .is_some_and(|x| x.len() as u64 > MAX_REQUEST_BYTES)
            {
                return Err(SpawnError::TooLarge("stdin payload".into()));
            }
            Ok(())
        }
        HelperRequest::Stop { user, server, .. }
        | HelperRequest::Status { user, server }
        | HelperRequest::Adopt { user, server, .. } => {
            user_ok(user_pattern, user)?;
            server_ok(server)
        }
        HelperRequest::List | HelperRequest::HostStatus => Ok(()),
        HelperRequest::SlurmSubmit(s) => {
            user_ok(user_pattern, &s.user)?;
            server_ok(&s.server)?;
            cluster_ok(config, &s.cluster)?;
            if !config.executables.contains_key(&s.executable) {
                return Err(SpawnError::Refused(format!(
                    "executable {:?} is not in the allow-list",
                    s.executable
                )));
            }
            if s.stdin
                .as_ref()
                .is_some_and(|x| x.len() as u64 > MAX_REQUEST_BYTES)
            {
                return Err(SpawnError::TooLarge("stdin payload".into()));
            }
            Ok(())
        }
        HelperRequest::SlurmCancel {
            user,
            server,
            cluster,
            ..
        } => {
            user_ok(user_pattern, user)?;
            server_ok(server)?;
            cluster_ok(config, cluster)
        }
        HelperRequest::ReadUserFile { user, path, .. } => {
            user_ok(user_pattern, user)?;
            if relative_path_ok(path) {
                Ok(())
            } else {
                Err(SpawnError::BadRequest(format!(
                    "path {path:?} must be relative to the home directory, without '..'"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> (HelperConfig, regex::Regex) {
        let cfg = HelperConfig::parse(
            "[executables]\nuiserver = \"/usr/bin/true\"\n",
            Path::new("spawn.toml"),
        )
        .unwrap();
        let re = regex::Regex::new(&cfg.user_pattern).unwrap();
        (cfg, re)
    }

    fn check(json: &str) -> Result<(), SpawnError> {
        let (cfg, re) = config();
        precheck(&cfg, &re, &decode(json.as_bytes())?)
    }

    #[test]
    fn refuses_hostile_requests_before_any_system_call() {
        for (json, needle) in [
            (
                r#"{"verb":"start","user":"../root","server":"s","executable":"uiserver"}"#,
                "pattern",
            ),
            (
                r#"{"verb":"start","user":"alice","server":"../x","executable":"uiserver"}"#,
                "server name",
            ),
            (
                r#"{"verb":"start","user":"alice","server":"workflows","executable":"uiserver"}"#,
                "reserved",
            ),
            (
                r#"{"verb":"start","user":"alice","server":"s","executable":"/bin/sh"}"#,
                "allow-list",
            ),
            (
                r#"{"verb":"start","user":"alice","server":"s","executable":"uiserver","profile":"big"}"#,
                "profile",
            ),
            (
                r#"{"verb":"read_user_file","user":"alice","path":"../bob/x"}"#,
                "relative",
            ),
            (
                r#"{"verb":"read_user_file","user":"alice","path":"/etc/shadow"}"#,
                "relative",
            ),
            (
                r#"{"verb":"stop","user":"alice","server":""}"#,
                "server name",
            ),
            (r#"{"verb":"start","user":"alice"}"#, "request JSON"),
            (
                r#"{"verb":"status","user":"alice","server":"s","uid":0}"#,
                "request JSON",
            ),
        ] {
            let e = check(json).expect_err(json).to_string();
            assert!(e.contains(needle), "{json}: {e}");
        }
        check(r#"{"verb":"start","user":"alice","server":"default","executable":"uiserver"}"#)
            .unwrap();
        check(r#"{"verb":"read_user_file","user":"alice","path":".steward/policy.toml"}"#).unwrap();
    }

    #[test]
    fn oversized_request_is_too_large() {
        let big = vec![b' '; MAX_REQUEST_BYTES as usize + 1];
        assert!(matches!(decode(&big), Err(SpawnError::TooLarge(_))));
    }
}
