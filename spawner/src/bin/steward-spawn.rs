//! `steward-spawn`: the privileged helper. One JSON request on stdin, one JSON reply on
//! stdout. Kept single-threaded on purpose: it forks, and forking is only safe without
//! other threads.

fn main() {
    steward_spawner::sys::ignore_sigpipe();
    let args: Vec<String> = std::env::args().collect();
    let code =
        steward_spawner::helper::main_with(&args, &mut std::io::stdin(), &mut std::io::stdout());
    std::process::exit(code);
}
