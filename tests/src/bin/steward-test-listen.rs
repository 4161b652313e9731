//! A minimal "server" for spawner tests and benchmarks: listens on the address given
//! as its only argument and answers every connection with `<hostname> <uid>\n`, so a
//! client can tell that the server is up, on which host, and as whom it runs.

use std::io::Write;

fn main() {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: steward-test-listen ADDR:PORT");
        std::process::exit(2);
    };
    let listener = match std::net::TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("steward-test-listen: binding {addr}: {e}");
            std::process::exit(1);
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let uid = nix::unistd::getuid();
    for mut conn in listener.incoming().flatten() {
        let _ = writeln!(conn, "{} {uid}", host.trim());
    }
}
