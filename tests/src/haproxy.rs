//! A real HAProxy (Debian's 2.6) in front of several hubs, for the two-hub tests.
//!
//! TLS passes through untouched (`mode tcp`): every hub terminates TLS with the same
//! certificate, so a browser cannot tell which hub answered, exactly as in production.
//! Each hub is health-checked with `GET /hub/health` over TLS and taken out of rotation
//! when it stops answering 200. Runs in the foreground (`-db`) and is killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Haproxy {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Haproxy {
    /// Balances `127.0.0.1:<port>` round-robin over `backends` (loopback ports of hubs).
    pub fn start(backends: &[u16]) -> Haproxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding a loopback port");
        Self::start_on(port, backends)
    }

    /// [`start`](Self::start) on a chosen port (the one the hubs' `public_url` names).
    pub fn start_on(port: u16, backends: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut conf = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n  timeout check 1s\n\
             frontend hubs\n  bind 127.0.0.1:{port}\n  default_backend hubs\n\
             backend hubs\n  balance roundrobin\n  option httpchk GET /hub/health\n  http-check expect status 200\n"
        );
        for (i, b) in backends.iter().enumerate() {
            conf.push_str(&format!(
                "  server hub{i} 127.0.0.1:{b} check check-ssl verify none inter 300ms fall 2 rise 1\n"
            ));
        }
        let conf_path = dir.path().join("haproxy.cfg");
        std::fs::write(&conf_path, conf).expect("writing haproxy.cfg");
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&conf_path)
            .output()
            .expect("running haproxy -c (install Debian's haproxy: scripts/install-deps.sh)");
        assert!(
            check.status.success(),
            "haproxy -c: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting haproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Haproxy {
            child: Some(child),
            _dir: dir,
            port,
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
