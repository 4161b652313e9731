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

/// `fork()`. Only called from the single-threaded helper, never from the hub.
///
/// # Safety
/// The caller must be single-threaded, so the child cannot inherit a lock held by
/// another thread (that is why forking happens in the helper, not the async hub).
pub unsafe fn fork() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: forwarded to the caller's guarantee above.
    unsafe { nix::unistd::fork() }
}

/// Exits the child immediately, without running atexit handlers or flushing stdio
/// buffers inherited from the parent (which would duplicate the parent's output).
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}
