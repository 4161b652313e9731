//! `steward`: the hub binary — serve, demo, and the admin commands.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "steward",
    version,
    about = "Multi-user hub for workflow servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub with a config file.
    Serve {
        #[arg(short, long, default_value = "/etc/steward/steward.toml")]
        config: PathBuf,
    },
    /// Everything on this machine: demo users, policy, workflows, self-signed TLS.
    Demo {
        #[arg(long, default_value = "/var/lib/steward-demo")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Also write the demo credentials as JSON to this file (mode 0600).
        #[arg(long)]
        credentials_file: Option<PathBuf>,
        /// Tests only: add the integer seconds in this file to the hub's clock.
        #[arg(long, hide = true)]
        clock_offset_file: Option<PathBuf>,
        /// Host the real Cylc UI server (cylc hubapp) and play a real cylc-flow workflow
        /// as alice; needs the venv scripts/install-deps.sh builds
        /// (/opt/steward/cylc-venv, or $STEWARD_CYLC_VENV).
        #[arg(long)]
        cylc: bool,
        /// Keep sessions, tokens and the server registry in this PostgreSQL database
        /// instead of SQLite in data_dir (`postgresql://user:password@host/db`).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Check, explain and query policy files.
    #[command(subcommand)]
    Policy(steward_policy::cli::PolicyCommand),
    /// Verify and search the audit log.
    #[command(subcommand)]
    Audit(steward_audit::cli::AuditCommand),
    /// Running UI servers (hub admins).
    #[command(subcommand)]
    Servers(steward_hub::cli::client::ServersCmd),
    /// Live sessions (hub admins).
    #[command(subcommand)]
    Sessions(steward_hub::cli::client::SessionsCmd),
    /// API tokens for scripts.
    #[command(subcommand)]
    Token(steward_hub::cli::client::TokenCmd),
    /// Every workflow you may read, with state counts (the overview, in a terminal).
    Scan(steward_hub::cli::client::Conn),
    /// Check the hub's configuration file.
    #[command(subcommand)]
    Config(steward_hub::config_check::ConfigCommand),
    /// The state store: move a hub from SQLite to PostgreSQL.
    #[command(subcommand)]
    Database(steward_hub::cli::database::DatabaseCmd),
    /// Packaging: write man pages and shell completions for this CLI into DIR.
    #[command(hide = true)]
    GenDocs { dir: PathBuf },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Policy(cmd) => {
            steward_policy::cli::run(cmd, &steward_hub::auth::Groups::default())
        }
        Command::Audit(steward_audit::cli::AuditCommand::Verify {
            deployment,
            checkpoint,
            config,
            key,
            strict,
            ..
        }) if !deployment.is_empty() => {
            // The checkpoint is in the hubs' database and the key in the data_dir,
            // which only this binary knows how to read.
            let config =
                config.unwrap_or_else(|| PathBuf::from(steward_hub::cli::audit::DEFAULT_CONFIG));
            steward_hub::cli::audit::verify_deployment(
                &config,
                &deployment,
                key.as_deref(),
                checkpoint.as_deref(),
                strict,
            )
        }
        Command::Audit(mut cmd) => {
            // The packaged hub keeps its head here (`[audit] head` defaults to
            // <data_dir>/audit.head); verify checks it whenever it exists.
            if let steward_audit::cli::AuditCommand::Verify {
                head, dir, files, ..
            } = &mut cmd
            {
                let default_head = std::path::Path::new("/var/lib/steward/audit.head");
                if head.is_none() && dir.is_none() && files.is_empty() && default_head.exists() {
                    *head = Some(default_head.to_path_buf());
                }
            }
            steward_audit::cli::run(cmd, std::path::Path::new("/var/log/steward/audit"), None)
        }
        Command::Servers(cmd) => run_async(steward_hub::cli::client::servers(cmd)),
        Command::Sessions(cmd) => run_async(steward_hub::cli::client::sessions(cmd)),
        Command::Token(cmd) => run_async(steward_hub::cli::client::token(cmd)),
        Command::Scan(conn) => run_async(steward_hub::cli::client::scan(conn)),
        Command::Config(cmd) => steward_hub::config_check::run(cmd),
        Command::Database(cmd) => run_async(steward_hub::cli::database::run(cmd)),
        Command::GenDocs { dir } => {
            steward_hub::docgen::run(<Cli as clap::CommandFactory>::command(), &dir)
        }
        Command::Serve { config } => {
            init_logging();
            run_async(async move {
                let cfg = steward_hub::config::HubConfig::load(&config)?;
                let hub = steward_hub::app::build(cfg).await?;
                steward_hub::app::serve(hub).await
            })
        }
        Command::Demo {
            data_dir,
            listen,
            credentials_file,
            clock_offset_file,
            cylc,
            database_url,
        } => {
            init_logging();
            run_async(async move {
                let cylc_venv = match cylc {
                    true => Some(steward_hub::cli::demo::cylc_venv()?),
                    false => None,
                };
                let opts = steward_hub::cli::demo::DemoOptions {
                    data_dir,
                    listen,
                    credentials_file,
                    clock_offset_file,
                    cylc_venv,
                    database_url,
                };
                let (config_path, creds) = steward_hub::cli::demo::prepare(&opts)?;
                if let Some(venv) = &opts.cylc_venv {
                    steward_hub::cli::demo::play_cylc_workflow(venv)?;
                    println!("alice's real Cylc workflow ~alice/{} is playing; open /user/alice/cylc/ after logging in.", steward_hub::cli::demo::CYLC_WORKFLOW);
                }
                let cfg = steward_hub::config::HubConfig::load(&config_path)?;
                let url = cfg.public_url.clone();
                let hub = steward_hub::app::build(cfg).await?;
                let state = hub.state.clone();
                println!("Steward demo hub: {url}/hub/");
                println!(
                    "Self-signed TLS; the CA is {}/tls/ca.crt",
                    opts.data_dir.display()
                );
                println!("Demo users (passwords are new on every start, shown only here):");
                for (u, p) in &creds {
                    println!("  {u:6} {p}");
                }
                println!(
                    "alice's forecast may be controlled by group {} (bob); carl is a hub admin.",
                    steward_hub::cli::demo::DEMO_GROUP
                );
                println!(
                    "Audit log: {}/audit/audit.log   Press Ctrl-C to stop.",
                    opts.data_dir.display()
                );
                if let Some(path) = &opts.credentials_file {
                    let json = serde_json::json!({ "url": url, "users": creds.iter().map(|(u, p)| serde_json::json!({"user": u, "password": p})).collect::<Vec<_>>() });
                    steward_hub::util::fsutil::write_private(path, json.to_string().as_bytes())?;
                }
                let res = steward_hub::app::serve(hub).await;
                steward_hub::cli::demo::stop_all(&state).await;
                if let Some(venv) = &opts.cylc_venv {
                    steward_hub::cli::demo::stop_cylc_workflow(venv);
                }
                println!("steward demo: stopped; demo servers stopped.");
                res
            })
        }
    };
    std::process::exit(code);
}

fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> i32 {
    let result = actix_web::rt::System::new().block_on(fut);
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("steward: {e:#}");
            1
        }
    }
}
