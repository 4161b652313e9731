//! Real Chromium for the web UI tests: a private `chromedriver`, one headless browser
//! per session, driven with fantoccini; and a `steward demo` hub to point it at.
//!
//! WebDriver traffic is plain HTTP to chromedriver on loopback, so this side needs no
//! TLS; the browser talks TLS to the hub (self-signed demo certificate, accepted with
//! `--ignore-certificate-errors`). Chromedriver runs in its own process group, and the
//! whole group (chromedriver and every Chromium it started) is killed when the handle
//! is dropped, so a failing test leaves no browser behind.

use crate::{bin, free_port, http_client, traversable_tempdir, Proc};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where screenshots go: `$STEWARD_SCREENSHOTS`, else the repository's docs/screenshots.
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("STEWARD_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots"))
}

/// A chromedriver process (and its browsers) in a process group of its own.
pub struct Chromedriver {
    child: Child,
    pub port: u16,
}

impl Chromedriver {
    pub fn start(log: &Path) -> Chromedriver {
        use std::os::unix::process::CommandExt;
        for exe in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(exe).exists(),
                "{exe} is missing: install chromium and chromium-driver (scripts/install-deps.sh)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut d = Chromedriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!(
                    "chromedriver exited with {status}; log: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Chromium children may outlive chromedriver's own exit: end the whole group.
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// One headless Chromium session with its own profile (so its own cookies).
pub struct Browser {
    pub client: Client,
    pub base: String,
    pub name: String,
    _profile: tempfile::TempDir,
    _driver: Chromedriver,
}

impl Browser {
    /// Starts a chromedriver and a browser whose viewport is about `width`x`height`.
    pub async fn start(name: &str, base: &str, width: u32, height: u32) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("steward-chromium-")
            .tempdir()
            .unwrap();
        let driver = Chromedriver::start(&profile.path().join("chromedriver.log"));
        let args = vec![
            "--headless=new".to_string(),
            // As root Chromium refuses to start without this (no user namespace sandbox).
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-quic".into(),
            "--disable-features=Translate,MediaRouter".into(),
            "--ignore-certificate-errors".into(),
            format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ),
            format!("--window-size={width},{height}"),
        ];
        let caps = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("WebDriver session for {name}: {e}"));
        Browser {
            client,
            base: base.to_string(),
            name: name.to_string(),
            _profile: profile,
            _driver: driver,
        }
    }

    /// Opens `path` (e.g. `/hub/#/audit`) on the hub.
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("[{}] goto {path}: {e}", self.name));
    }

    /// Changes the page's hash route without reloading it.
    pub async fn route(&self, hash: &str) {
        self.js(&format!("location.hash = {}; return true;", json!(hash)))
            .await;
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("[{}] script failed: {e}\n{script}", self.name))
    }

    pub async fn js_async(&self, script: &str) -> Value {
        self.client
            .execute_async(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("[{}] async script failed: {e}\n{script}", self.name))
    }

    /// Polls a JavaScript expression until it is truthy; returns its value.
    pub async fn wait_js(&self, expr: &str, timeout: Duration, what: &str) -> Value {
        let deadline = Instant::now() + timeout;
        let script = format!("try {{ return ({expr}); }} catch (e) {{ return null; }}");
        let mut last = Value::Null;
        while Instant::now() < deadline {
            last = self.js(&script).await;
            let truthy = match &last {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.screenshot(&format!("failed-{}", self.name)).await;
        let body = self
            .js("return document.body ? document.body.innerText.slice(0, 3000) : ''")
            .await;
        panic!(
            "[{}] timed out after {timeout:?} waiting for {what} ({expr}); last value {last}\npage text:\n{}",
            self.name,
            body.as_str().unwrap_or_default()
        );
    }

    /// Waits for a CSS selector to match an element.
    pub async fn wait_css(&self, css: &str, timeout: Duration) -> Element {
        self.wait_js(
            &format!("document.querySelector({}) !== null", json!(css)),
            timeout,
            css,
        )
        .await;
        self.find(css).await
    }

    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("[{}] find {css}: {e}", self.name))
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("[{}] click {css}: {e}", self.name));
    }

    /// Types into whatever has keyboard focus (fantoccini key names work: `Key::Enter`).
    pub async fn type_focused(&self, text: &str) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("[{}] typing: {e}", self.name));
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Scrolls so that the element matching `css` is at the top of the viewport
    /// (`None`: the top of the page), for a screenshot that shows what matters.
    pub async fn scroll_to(&self, css: Option<&str>) {
        let script = match css {
            Some(c) => format!(
                "const e = document.querySelector({}); if (e) e.scrollIntoView({{block: 'start'}}); return true;",
                json!(c)
            ),
            None => "window.scrollTo(0, 0); return true;".to_string(),
        };
        self.js(&script).await;
    }

    /// Saves a PNG of the viewport as `<screenshots_dir>/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = match self.client.screenshot().await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("[{}] screenshot {name} failed: {e}", self.name);
                return;
            }
        };
        let dir = screenshots_dir();
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("[{}] screenshot {}", self.name, path.display());
    }

    /// Violations of the Content-Security-Policy the page has reported.
    pub async fn csp_violations(&self) -> Vec<String> {
        let v = self
            .js("return window.stewardCspViolations || ['app.js did not run']")
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    pub async fn close(self) {
        let Browser {
            client, _driver, ..
        } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(_driver);
    }
}

/// `steward demo` on a free port with a movable clock, for browser tests.
pub struct DemoHub {
    pub proc: Proc,
    pub data: tempfile::TempDir,
    pub base: String,
    pub ca: PathBuf,
    pub clock_file: PathBuf,
    creds: Value,
    // Declared last, so it is released after the hub above has stopped.
    _lock: crate::DemoLock,
}

impl DemoHub {
    pub fn start() -> DemoHub {
        Self::start_with_args(&[])
    }

    /// A demo hub started with extra `steward demo` arguments (e.g. `--cylc`).
    pub fn start_with_args(args: &[&str]) -> DemoHub {
        // The demo users are machine-wide: another test binary's demo must not reset
        // their passwords or kill their servers while this one runs.
        let lock = crate::demo_lock();
        let data = traversable_tempdir();
        let port = free_port();
        let creds_file = data.path().join("creds.json");
        let clock_file = data.path().join("clock-offset");
        std::fs::write(&clock_file, "0\n").unwrap();
        let mut cmd = Command::new(bin("steward"));
        cmd.args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data.path())
        .arg("--credentials-file")
        .arg(&creds_file)
        .arg("--clock-offset-file")
        .arg(&clock_file)
        .args(args)
        .env("STEWARD_LOG", "warn");
        let mut proc = Proc::spawn(cmd);
        proc.wait_for_line("ready on", Duration::from_secs(120));
        let creds: Value =
            serde_json::from_str(&std::fs::read_to_string(&creds_file).unwrap()).unwrap();
        DemoHub {
            proc,
            base: format!("https://127.0.0.1:{port}"),
            ca: data.path().join("tls/ca.crt"),
            clock_file,
            creds,
            data,
            _lock: lock,
        }
    }

    pub fn password(&self, user: &str) -> String {
        self.creds["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user"] == user)
            .unwrap_or_else(|| panic!("no demo user {user}"))["password"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Moves the hub's clock: `secs` from now on are added to the wall clock.
    pub fn set_clock_offset(&self, secs: i64) {
        let tmp = self.clock_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{secs}\n")).unwrap();
        std::fs::rename(&tmp, &self.clock_file).unwrap();
    }

    /// Signs `user` in over HTTP (which also starts their own server in the background);
    /// returns the cookie-keeping client and the session's CSRF token.
    pub async fn login_http(&self, user: &str) -> (reqwest::Client, String) {
        let client = http_client(&self.ca);
        let r = client
            .post(format!("{}/hub/api/login", self.base))
            .json(&json!({"username": user, "password": self.password(user)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login {user}");
        let body: Value = r.json().await.unwrap();
        (
            client,
            body["csrf"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Audit records (JSON lines) matching `pred`.
    pub fn audit_records(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        std::fs::read_to_string(self.data.path().join("audit/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| pred(r))
            .collect()
    }
}
