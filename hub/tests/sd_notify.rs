//! The readiness message reaches a real datagram socket named by NOTIFY_SOCKET, and
//! nothing fails when the variable is unset. One test in its own process: it changes
//! the environment, which other tests' threads must not see half-way.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[test]
fn ready_is_sent_to_notify_socket_and_is_a_no_op_without_it() {
    let addr: std::net::SocketAddr = "127.0.0.1:8443".parse().unwrap();
    std::env::remove_var("NOTIFY_SOCKET");
    steward_hub::notify::ready(addr);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);
    steward_hub::notify::ready(addr);
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    let lines: Vec<&str> = msg.lines().collect();
    assert!(lines.contains(&"READY=1"), "{msg:?}");
    assert!(
        lines.contains(&"STATUS=listening on https://127.0.0.1:8443"),
        "{msg:?}"
    );
    std::env::remove_var("NOTIFY_SOCKET");
}
