//! The UI server's only `unsafe`: the fork that detaches a scheduler (see `daemon`).

/// Forks; the parent exits at once (`_exit`: no atexit handlers, no stdio flush that
/// would duplicate buffered output) and only the child returns.
///
/// Refused (EBUSY) unless the process has exactly one thread: a child forked from a
/// multi-threaded process may inherit a lock another thread held and deadlock.
pub fn fork_and_leave_parent() -> nix::Result<()> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
        });
    if threads != Some(1) {
        return Err(nix::Error::EBUSY);
    }
    // SAFETY: the process has one thread (checked above; no other thread exists that
    // could start one), so the child is a faithful copy of a single-threaded process.
    match unsafe { nix::unistd::fork() }? {
        // SAFETY: _exit has no preconditions and never returns.
        nix::unistd::ForkResult::Parent { .. } => unsafe { libc::_exit(0) },
        nix::unistd::ForkResult::Child => Ok(()),
    }
}
