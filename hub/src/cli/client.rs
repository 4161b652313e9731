//! The admin and scripting commands (`steward servers|sessions|token|scan`): small
//! clients of a running hub's API, authenticated with an API token.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The hub's public URL.
    #[arg(long, env = "STEWARD_URL", default_value = "https://127.0.0.1:8443")]
    pub url: String,
    /// An API token (`steward token create`); needed by every command but `token create`.
    #[arg(long, env = "STEWARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA to trust for the hub's certificate (default: the system's roots are NOT
    /// used; give the CA that signed the hub certificate).
    #[arg(long, env = "STEWARD_CA")]
    pub ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ServersCmd {
    /// List running UI servers.
    List(Conn),
    /// Stop an owner's server (its workflows keep running).
    Stop {
        owner: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Which ssh pool host an owner's next server would go to, asking every host now.
    Place {
        #[arg(long)]
        owner: String,
        /// Print the host × condition table and why the winner won.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Drain an ssh pool host: no new servers there, running ones keep running.
    Drain {
        host: String,
        /// Undrain: take new servers again.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub enum SessionsCmd {
    List(Conn),
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Log in (password from STEWARD_PASSWORD or the first line of stdin) and create a token.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// read, execute or write (execute/write elevate the login first).
        #[arg(long, default_value = "read")]
        class: String,
        #[arg(long, default_value_t = 3600)]
        expires_in_secs: u64,
        #[command(flatten)]
        conn: Conn,
    },
    List(Conn),
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn client(conn: &Conn) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &conn.ca {
        let pem = std::fs::read_to_string(ca)
            .map_err(|e| anyhow::anyhow!("--ca {}: {e}", ca.display()))?;
        for block in pem
            .split("-----END CERTIFICATE-----")
            .filter(|b| b.contains("BEGIN CERTIFICATE"))
        {
            let der = crate::pki::ca::pem_to_der(&format!("{block}-----END CERTIFICATE-----"))?;
            roots.add(rustls::pki_types::CertificateDer::from(der))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .cookie_store(true)
        .build()?)
}

async fn call(
    conn: &Conn,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = conn
        .token
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("no API token: pass --token or set STEWARD_TOKEN"))?;
    let mut req = client(conn)?
        .request(method, format!("{}{path}", conn.url.trim_end_matches('/')))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            v["error"].as_str().unwrap_or("request failed")
        );
    }
    Ok(v)
}

pub async fn servers(cmd: ServersCmd) -> anyhow::Result<()> {
    match cmd {
        ServersCmd::List(conn) => {
            let v = call(&conn, reqwest::Method::GET, "/hub/api/admin/servers", None).await?;
            println!(
                "{:<16} {:<8} {:<8} {:<14} {:>8} {:<12} {:<20} STATE",
                "OWNER", "SERVER", "BACKEND", "HOST/JOB", "PID", "PROFILE", "SINCE"
            );
            let running = v["servers"].as_array().into_iter().flatten();
            for s in running.chain(v["starting"].as_array().into_iter().flatten()) {
                let state = match s["reason"].as_str() {
                    Some(why) => format!("{} ({why})", s["state"].as_str().unwrap_or("")),
                    None => s["state"].as_str().unwrap_or("").to_string(),
                };
                println!(
                    "{:<16} {:<8} {:<8} {:<14} {:>8} {:<12} {:<20} {state}",
                    s["owner"].as_str().unwrap_or(""),
                    s["server"].as_str().unwrap_or(""),
                    s["backend"].as_str().unwrap_or(""),
                    s["where"].as_str().unwrap_or(""),
                    // Slurm jobs have no pid the hub knows (0).
                    s["pid"]
                        .as_u64()
                        .filter(|p| *p > 0)
                        .map_or("-".into(), |p| p.to_string()),
                    s["profile"].as_str().unwrap_or("-"),
                    s["since"].as_i64().map_or("-".into(), format_time),
                );
            }
        }
        ServersCmd::Place {
            owner,
            explain,
            conn,
        } => {
            let v = call(
                &conn,
                reqwest::Method::GET,
                &format!("/hub/api/admin/placement?owner={owner}"),
                None,
            )
            .await?;
            match v["winner"].as_str() {
                Some(w) => println!("{owner}'s next server would go to {w}"),
                None => println!("no host can take {owner}'s next server"),
            }
            if explain {
                println!("{}", v["table"].as_str().unwrap_or(""));
                println!("{}", v["why"].as_str().unwrap_or(""));
            }
        }
        ServersCmd::Drain { host, undo, conn } => {
            call(
                &conn,
                reqwest::Method::POST,
                &format!("/hub/api/admin/hosts/{host}/drain"),
                Some(json!({ "drained": !undo })),
            )
            .await?;
            if undo {
                println!("{host} takes new servers again");
            } else {
                println!("{host} is drained: no new servers; running ones keep running");
            }
        }
        ServersCmd::Stop { owner, conn } => {
            call(
                &conn,
                reqwest::Method::POST,
                &format!("/hub/api/admin/servers/{owner}/stop"),
                None,
            )
            .await?;
            println!("stopped {owner}'s server (a queued Slurm start is cancelled)");
        }
    }
    Ok(())
}

/// Seconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
fn format_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || secs.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub async fn sessions(cmd: SessionsCmd) -> anyhow::Result<()> {
    match cmd {
        SessionsCmd::List(conn) => {
            let v = call(&conn, reqwest::Method::GET, "/hub/api/admin/sessions", None).await?;
            println!("{:<18} {:<16} {:<8} ADDRESS", "ID", "USER", "CLASS");
            for s in v["sessions"].as_array().into_iter().flatten() {
                println!(
                    "{:<18} {:<16} {:<8} {}",
                    s["id"].as_str().unwrap_or(""),
                    s["user"].as_str().unwrap_or(""),
                    s["class"].as_str().unwrap_or(""),
                    s["addr"].as_str().unwrap_or("")
                );
            }
        }
        SessionsCmd::Revoke { id, conn } => {
            call(
                &conn,
                reqwest::Method::POST,
                &format!("/hub/api/admin/sessions/{id}/revoke"),
                None,
            )
            .await?;
            println!("revoked session {id}");
        }
    }
    Ok(())
}

pub async fn token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            user,
            name,
            class,
            expires_in_secs,
            conn,
        } => {
            let password = match std::env::var("STEWARD_PASSWORD") {
                Ok(p) => p,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let http = client(&conn)?;
            let base = conn.url.trim_end_matches('/');
            let login = http
                .post(format!("{base}/hub/api/login"))
                .json(&json!({"username": user, "password": password}))
                .send()
                .await?;
            let status = login.status();
            let mut v: Value = login.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!("login: {status}: {}", v["error"].as_str().unwrap_or(""));
            }
            if class != "read" {
                let r = http
                    .post(format!("{base}/hub/api/elevate"))
                    .header("x-csrf-token", v["csrf"].as_str().unwrap_or(""))
                    .json(&json!({"class": class, "password": password}))
                    .send()
                    .await?;
                let status = r.status();
                v = r.json().await.unwrap_or(Value::Null);
                if !status.is_success() {
                    anyhow::bail!("elevate: {status}: {}", v["error"].as_str().unwrap_or(""));
                }
            }
            let r = http
                .post(format!("{base}/hub/api/tokens"))
                .header("x-csrf-token", v["csrf"].as_str().unwrap_or(""))
                .json(&json!({"name": name, "class": class, "expires_in_secs": expires_in_secs}))
                .send()
                .await?;
            let status = r.status();
            let t: Value = r.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                anyhow::bail!("create: {status}: {}", t["error"].as_str().unwrap_or(""));
            }
            println!("{}", t["token"].as_str().unwrap_or(""));
            eprintln!(
                "token {} ({class}) expires at unix time {}; it is shown only now",
                t["id"].as_str().unwrap_or(""),
                t["expires"]
            );
        }
        TokenCmd::List(conn) => {
            let v = call(&conn, reqwest::Method::GET, "/hub/api/tokens", None).await?;
            for t in v["tokens"].as_array().into_iter().flatten() {
                println!(
                    "{} {} {} expires {} revoked {}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    t["class"].as_str().unwrap_or(""),
                    t["expires"],
                    t["revoked"]
                );
            }
        }
        TokenCmd::Revoke { id, conn } => {
            call(
                &conn,
                reqwest::Method::DELETE,
                &format!("/hub/api/tokens/{id}"),
                None,
            )
            .await?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

/// `steward scan`: the overview in a terminal.
pub async fn scan(conn: Conn) -> anyhow::Result<()> {
    let v = call(&conn, reqwest::Method::GET, "/hub/api/overview", None).await?;
    for o in v["owners"].as_array().into_iter().flatten() {
        let stale = if o["stale"] == true {
            "  (stale: server down, last known state)"
        } else {
            ""
        };
        println!("{}{stale}", o["owner"].as_str().unwrap_or(""));
        for w in o["workflows"].as_array().into_iter().flatten() {
            let counts: Vec<String> = w["counts"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, n)| format!("{k}:{n}"))
                .collect();
            println!(
                "  {:<32} {:<10} {}",
                w["name"].as_str().unwrap_or(""),
                w["state"].as_str().unwrap_or(""),
                counts.join(" ")
            );
        }
    }
    Ok(())
}
