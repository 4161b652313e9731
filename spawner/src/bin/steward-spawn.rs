//! `steward-spawn`: the privileged helper. One JSON request on stdin, one JSON reply on
//! stdout. Kept single-threaded on purpose: it forks, and forking is only safe without
//! other threads.

fn main() {
    // A server that exits before reading its stdin must not kill the helper with SIGPIPE.
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let args: Vec<String> = std::env::args().collect();
    let code =
        steward_spawner::helper::main_with(&args, &mut std::io::stdin(), &mut std::io::stdout());
    std::process::exit(code);
}
