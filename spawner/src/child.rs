//! Starting a process as another user inside its cgroup.
//!
//! The order in the child is the security argument, so it is fixed here and nowhere
//! else: join the cgroup (still root, so limits apply before the user's code runs) →
//! initgroups/setgid/setuid (groups first: after setuid we could no longer drop them) →
//! verify root cannot be regained → PR_SET_NO_NEW_PRIVS → stdio and close-on-exec for
//! every other descriptor → exec with the clean environment built by the caller.

use crate::cgroup::Cgroups;
use crate::error::SpawnError;
use crate::sys;
use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Gid, Uid, User};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

pub struct ChildSpec<'a> {
    pub user: &'a User,
    pub cgroups: &'a Cgroups,
    pub server: &'a str,
    pub executable: PathBuf,
    pub args: Vec<String>,
    /// `NAME=value` pairs, already filtered.
    pub env: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    /// Receives the server's stdout and stderr.
    pub log: std::fs::File,
}

/// Why the child could not exec, sent back over a close-on-exec pipe.
fn report(status: &OwnedFd, stage: &str, err: nix::Error) -> ! {
    let msg = format!("{stage}: {err}");
    let _ = nix::unistd::write(status, msg.as_bytes());
    sys::exit_child(127)
}

fn cstring(what: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::BadRequest(format!("{what} contains a NUL byte")))
}

/// Drops to `user` for good: supplementary groups, gid, uid, then proves it stuck.
pub fn become_user(user: &User) -> Result<(), (&'static str, nix::Error)> {
    let name = CString::new(user.name.as_str()).map_err(|_| ("user name", nix::Error::EINVAL))?;
    nix::unistd::initgroups(&name, user.gid).map_err(|e| ("initgroups", e))?;
    nix::unistd::setgid(user.gid).map_err(|e| ("setgid", e))?;
    nix::unistd::setuid(user.uid).map_err(|e| ("setuid", e))?;
    // Belt and braces (as sudo-rs does after PAM): verify, do not assume.
    if nix::unistd::getuid() != user.uid
        || nix::unistd::geteuid() != user.uid
        || nix::unistd::getgid() != user.gid
        || nix::unistd::getegid() != user.gid
        || nix::unistd::setuid(Uid::from_raw(0)).is_ok()
        || nix::unistd::setgid(Gid::from_raw(0)).is_ok()
    {
        return Err(("privilege drop check", nix::Error::EPERM));
    }
    Ok(())
}

/// Forks, sets the child up, execs, and returns the child's pid once exec succeeded.
pub fn spawn(spec: ChildSpec<'_>) -> Result<u32, SpawnError> {
    let path = cstring("executable path", &spec.executable.to_string_lossy())?;
    let mut argv = vec![path.clone()];
    for a in &spec.args {
        argv.push(cstring("argument", a)?);
    }
    let envp = spec
        .env
        .iter()
        .map(|e| cstring("environment", e))
        .collect::<Result<Vec<_>, _>>()?;
    let home = cstring("home directory", &spec.user.dir.to_string_lossy())?;

    let (stdin_r, stdin_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::sys("pipe", e))?;
    let (status_r, status_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::sys("pipe", e))?;

    // The helper is single-threaded (no async runtime, no threads spawned before this
    // point), so the child may allocate and run ordinary code before exec; sys::fork
    // checks that rather than trusting it.
    match sys::fork().map_err(|e| SpawnError::sys("fork", e))? {
        ForkResult::Child => {
            drop(stdin_w);
            drop(status_r);
            if let Err(e) = nix::unistd::setsid() {
                report(&status_w, "setsid", e);
            }
            let me = std::process::id();
            if let Err(e) = spec.cgroups.join(&spec.user.name, spec.server, me) {
                let _ = nix::unistd::write(&status_w, format!("joining cgroup: {e}").as_bytes());
                sys::exit_child(127);
            }
            if let Err((stage, e)) = become_user(spec.user) {
                report(&status_w, stage, e);
            }
            if let Err(e) = sys::set_no_new_privs() {
                report(&status_w, "PR_SET_NO_NEW_PRIVS", e);
            }
            if let Err(e) = nix::unistd::chdir(home.as_c_str()) {
                report(&status_w, "chdir to home", e);
            }
            for (from, to) in [
                (stdin_r.as_raw_fd(), 0),
                (spec.log.as_raw_fd(), 1),
                (spec.log.as_raw_fd(), 2),
            ] {
                if let Err(e) = nix::unistd::dup2(from, to) {
                    report(&status_w, "dup2", e);
                }
            }
            if let Err(e) = sys::cloexec_from(3) {
                report(&status_w, "close_range", e);
            }
            let e = nix::unistd::execve(&path, &argv, &envp).unwrap_err();
            report(&status_w, "exec", e)
        }
        ForkResult::Parent { child } => {
            drop(stdin_r);
            drop(status_w);
            let mut status = String::new();
            let _ = std::fs::File::from(status_r).read_to_string(&mut status);
            if !status.is_empty() {
                let _ = nix::sys::wait::waitpid(child, None);
                return Err(SpawnError::Helper(format!(
                    "starting {} as {}: {status}",
                    spec.executable.display(),
                    spec.user.name
                )));
            }
            // exec succeeded: hand over the secrets, then EOF.
            let mut w = std::fs::File::from(stdin_w);
            if let Some(bytes) = &spec.stdin {
                w.write_all(bytes)
                    .map_err(|e| SpawnError::io("writing the server's stdin", e))?;
            }
            drop(w);
            Ok(child.as_raw() as u32)
        }
    }
}

/// Reads a file as `user` (after dropping privileges in a child), refusing symlinks in
/// the last component and anything larger than `max_bytes`.
pub fn read_as_user(
    user: &User,
    path: &std::path::Path,
    max_bytes: u64,
) -> Result<Vec<u8>, SpawnError> {
    let full = user.dir.join(path);
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SpawnError::sys("pipe", e))?;
    match sys::fork().map_err(|e| SpawnError::sys("fork", e))? {
        ForkResult::Child => {
            drop(r);
            let mut out = std::fs::File::from(w);
            let fail = |out: &mut std::fs::File, code: u8, msg: String| -> ! {
                let _ = out.write_all(&[code]);
                let _ = out.write_all(msg.as_bytes());
                sys::exit_child(1)
            };
            if let Err((stage, e)) = become_user(user) {
                fail(&mut out, b'E', format!("{stage}: {e}"));
            }
            // std opens with O_CLOEXEC; O_NONBLOCK so a FIFO planted there cannot block us.
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&full)
            {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    fail(&mut out, b'N', format!("{} does not exist", full.display()))
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => fail(
                    &mut out,
                    b'R',
                    format!(
                        "{} is a symbolic link; refusing to follow it",
                        full.display()
                    ),
                ),
                Err(e) => fail(
                    &mut out,
                    b'R',
                    format!("opening {} as {}: {e}", full.display(), user.name),
                ),
            };
            let meta = match file.metadata() {
                Ok(m) => m,
                Err(e) => fail(&mut out, b'E', format!("stat {}: {e}", full.display())),
            };
            if !meta.is_file() {
                fail(
                    &mut out,
                    b'R',
                    format!("{} is not a regular file", full.display()),
                );
            }
            if meta.len() > max_bytes {
                fail(
                    &mut out,
                    b'T',
                    format!(
                        "{} is {} bytes, over the {max_bytes}-byte limit",
                        full.display(),
                        meta.len()
                    ),
                );
            }
            let mut buf = Vec::with_capacity(meta.len() as usize);
            if let Err(e) = file.take(max_bytes + 1).read_to_end(&mut buf) {
                fail(&mut out, b'E', format!("reading {}: {e}", full.display()));
            }
            if buf.len() as u64 > max_bytes {
                fail(
                    &mut out,
                    b'T',
                    format!(
                        "{} grew over the {max_bytes}-byte limit while being read",
                        full.display()
                    ),
                );
            }
            let _ = out.write_all(b"O");
            let _ = out.write_all(&buf);
            sys::exit_child(0)
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut buf = Vec::new();
            let res = std::fs::File::from(r)
                .take(max_bytes + 4096)
                .read_to_end(&mut buf);
            let _ = nix::sys::wait::waitpid(child, None);
            res.map_err(|e| SpawnError::io("reading from the file reader", e))?;
            let (code, rest) = buf
                .split_first()
                .ok_or_else(|| SpawnError::Helper("file reader died without an answer".into()))?;
            let msg = || String::from_utf8_lossy(rest).into_owned();
            match code {
                b'O' => Ok(rest.to_vec()),
                b'N' => Err(SpawnError::NotFound(msg())),
                b'R' => Err(SpawnError::Refused(msg())),
                b'T' => Err(SpawnError::TooLarge(msg())),
                _ => Err(SpawnError::Helper(msg())),
            }
        }
    }
}
