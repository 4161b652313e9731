//! A private, real PostgreSQL server for tests and benchmarks (Debian's `postgresql`).
//!
//! [`Postgres::start`] runs `initdb` (scram-sha-256, a generated superuser password) into a
//! fresh directory under `/var/tmp` (the `postgres` account must reach it, which a 0700
//! temporary directory of root's would forbid), then runs `postgres` in the foreground as
//! that account on a free loopback port, with its socket in the same directory, and creates
//! the database `steward`. [`Postgres::stop`] and [`Postgres::resume`] stop and start the
//! same cluster (for "the database went away" tests); dropping it stops the server and
//! removes the directory. Needs root (to become `postgres`).
//!
//! This file depends only on `std`, `tempfile` and `nix`, so a benchmark can include it with
//! `#[path]`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the server binaries: the newest `/usr/lib/postgresql/<v>/bin`.
pub fn pg_bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            format!(
                "/usr/lib/postgresql: {e} (install Debian's postgresql: scripts/install-deps.sh)"
            )
        })?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no /usr/lib/postgresql/<version>/bin/postgres found".to_string())
}

pub const SUPERUSER: &str = "postgres";
pub const DATABASE: &str = "steward";

pub struct Postgres {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    bin: PathBuf,
    pub port: u16,
    pub password: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// Runs `cmd` as the `postgres` account (setpriv execs directly, so signals reach it).
fn as_postgres(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--reset-env",
    ])
    .arg(program);
    c
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = pg_bin_dir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::Builder::new()
            .prefix("steward-pg-")
            .tempdir_in("/var/tmp")
            .expect("creating a directory under /var/tmp");
        let pw_file = dir.path().join("pw");
        let password = format!("steward-{}", std::process::id());
        std::fs::write(&pw_file, &password).expect("writing the password file");
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("running chown");
        assert!(status.success(), "chown postgres {}", dir.path().display());
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "scram-sha-256", "-U", SUPERUSER, "--no-sync"])
            .arg(format!("--pwfile={}", pw_file.display()))
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&pw_file);
        let mut pg = Postgres {
            child: None,
            dir: Some(dir),
            bin,
            port: free_port(),
            password,
        };
        pg.resume();
        pg.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        pg
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("directory kept until drop").path()
    }

    /// `postgresql://postgres:…@127.0.0.1:PORT/steward`.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{SUPERUSER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    /// Starts the server on the existing cluster and waits until it accepts logins.
    pub fn resume(&mut self) {
        if self.child.is_some() {
            return;
        }
        let dir = self.dir().to_path_buf();
        let log = std::fs::File::create(dir.join("server.log")).expect("server.log");
        let child = as_postgres(&self.bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={}", self.port)])
            .args(["-c", &format!("unix_socket_directories={}", dir.display())])
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("postgres did not accept connections within 30 s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown), keeping the cluster for [`Postgres::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs one SQL statement with `psql` as the superuser; returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("running psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        // The directory is postgres-owned; TempDir removal as root still works.
        drop(self.dir.take());
    }
}
