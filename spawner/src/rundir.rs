//! The per-user runtime directory a Unix-socket server (`cylc hubapp`) listens in.
//!
//! `<root>` is root's (mode 0755, so owners can reach their own directory);
//! `<root>/<user>` is the user's, mode 0700, so no other local user can reach a
//! socket in it. An existing entry that is not a real directory (a symlink the user
//! planted, a file) is refused rather than followed.

use crate::error::SpawnError;
use nix::unistd::{chown, User};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn real_dir(path: &Path, mode: u32) -> Result<std::fs::Metadata, SpawnError> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(SpawnError::io(format!("creating {}", path.display()), e)),
    }
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| SpawnError::io(format!("reading {}", path.display()), e))?;
    if !meta.file_type().is_dir() {
        return Err(SpawnError::Refused(format!(
            "{} is not a directory (a symlink or file is never followed); remove it",
            path.display()
        )));
    }
    Ok(meta)
}

/// Makes (or repairs) `<root>/<user>` and returns it.
pub fn user_runtime_dir(root: &Path, user: &User) -> Result<PathBuf, SpawnError> {
    let meta = real_dir(root, 0o755)?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(SpawnError::Refused(format!(
            "runtime_dir {} must be owned by root and writable by nobody else",
            root.display()
        )));
    }
    let dir = root.join(&user.name);
    real_dir(&dir, 0o700)?;
    chown(&dir, Some(user.uid), Some(user.gid))
        .map_err(|e| SpawnError::io(format!("chown {}", dir.display()), e.into()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| SpawnError::io(format!("chmod {}", dir.display()), e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_refused_not_followed() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "a_planted_symlink_is_refused_not_followed needs root under CI"
            );
            eprintln!("SKIPPED a_planted_symlink_is_refused_not_followed: needs root (chown)");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let me = User::from_uid(nix::unistd::Uid::from_raw(0))
            .unwrap()
            .unwrap();
        let dir = user_runtime_dir(root.path(), &me).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().mode() & 0o777,
            0o700,
            "the user's directory is private"
        );
        std::fs::remove_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/etc", &dir).unwrap();
        let e = user_runtime_dir(root.path(), &me).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
    }
}
