//! The few raw system calls the helper needs that `nix` does not wrap safely.
//! Each wrapper is tiny and states why its `unsafe` block is sound.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Sends `sig` to `pid`, ignoring "no such process" (it may have just exited).
pub fn kill_pid(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        if raw > 0 {
            let _ = kill(Pid::from_raw(raw), sig);
        }
    }
}

/// Sets `PR_SET_NO_NEW_PRIVS`: after this, exec can never gain privileges (setuid bits,
/// file capabilities), so a server cannot climb back to root through a setuid binary.
pub fn set_no_new_privs() -> nix::Result<()> {
    nix::sys::prctl::set_no_new_privs()
}

/// Marks every descriptor from `first` upwards close-on-exec, so exec drops anything the
/// helper inherited from the hub (sockets, the database, other servers' pipes).
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes flags on descriptors of this process; it reads
    // no memory of ours, and an error is reported through the return value.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

/// `fork()`, refused (EBUSY) unless this process has exactly one thread.
///
/// A child forked from a multi-threaded process inherits locks other threads held
/// (the allocator's, stdio's) and may deadlock before exec. The helper never starts a
/// thread, so the check never fails there; it turns a future mistake (a thread started
/// in the helper, or this called from the async hub) into an error, not a hang.
pub fn fork() -> nix::Result<nix::unistd::ForkResult> {
    if thread_count() != Some(1) {
        return Err(nix::Error::EBUSY);
    }
    // SAFETY: checked just above that this process has one thread (only a thread of
    // this process could add one, and there is none), so the child is a faithful copy.
    unsafe { nix::unistd::fork() }
}

/// The `Threads:` line of /proc/self/status.
fn thread_count() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Ignores SIGPIPE, so a server that exits before reading its stdin does not kill the
/// helper writing to it (the write fails with EPIPE instead).
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code, so nothing can run in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Exits the child immediately, without running atexit handlers or flushing stdio
/// buffers inherited from the parent (which would duplicate the parent's output).
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Runs `setup` in the forked child of `cmd`, just before it execs (to switch user).
///
/// The caller promises the helper is single-threaded when `cmd` spawns (the helper
/// starts its reader threads only after spawning), so the child may allocate and read
/// NSS files in `setup`, as `child::spawn` does.
pub fn before_exec(
    cmd: &mut std::process::Command,
    setup: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) {
    use std::os::unix::process::CommandExt;
    // SAFETY: a single-threaded process forks (the caller's promise above), so no lock
    // another thread held at fork time can be left locked in the child for `setup`.
    unsafe {
        cmd.pre_exec(setup);
    }
}
