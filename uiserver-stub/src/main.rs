//! `steward-uiserver`: the per-owner UI server (default) or a workflow scheduler
//! (`steward-uiserver scheduler --workflow NAME`). See the library docs.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "steward-uiserver",
    version,
    about = "Steward per-owner UI server"
)]
struct Cli {
    /// Listen address (default 127.0.0.1:0; env STEWARD_UISERVER_BIND).
    #[arg(long, env = "STEWARD_UISERVER_BIND")]
    bind: Option<String>,
    /// Memory to hold, in MiB (written, so it is charged), for as long as the server
    /// runs; taken before anything else. Lets a site check, and the tests prove, that a
    /// profile's memory limit is enforced wherever the server is placed (a Slurm job
    /// over its request ends OUT_OF_MEMORY before it registers).
    #[arg(long, default_value_t = 0)]
    ballast_mib: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default): reads the bootstrap from stdin.
    Serve,
    /// Run one workflow's scheduler (started by the UI server's `play`).
    Scheduler {
        #[arg(long)]
        workflow: String,
        /// Double-fork into the background first.
        #[arg(long)]
        detach: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ballast = vec![1u8; cli.ballast_mib << 20];
    let result = match cli.command {
        Some(Command::Scheduler { workflow, detach }) => run_scheduler(workflow, detach),
        None | Some(Command::Serve) => steward_uiserver::server_main::run(cli.bind),
    };
    drop(std::hint::black_box(ballast));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steward-uiserver: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_scheduler(workflow: String, detach: bool) -> anyhow::Result<()> {
    steward_protocol::ids::validate_workflow_name(&workflow)
        .map_err(|e| anyhow::anyhow!("--workflow: {e}"))?;
    let layout = steward_uiserver::paths::Layout::from_env()?;
    if !layout.flow_file(&workflow).is_file() {
        anyhow::bail!(
            "no workflow {workflow:?}: {} is missing",
            layout.flow_file(&workflow).display()
        );
    }
    if detach {
        steward_uiserver::daemon::detach(&layout, &workflow)?;
    }
    steward_uiserver::scheduler::run(layout, workflow)
}
