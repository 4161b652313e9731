//! `steward-policy`: the policy commands on their own, for tests and for checking
//! policy files on a machine without the hub. The hub's `steward policy …` runs the
//! same [`steward_policy::cli::run`] with its NSS/LDAP group lookup; this binary has
//! none, so groups must be given with `--owner-groups`/`--user-groups`.

use clap::Parser;
use steward_policy::cli::{run, NoLookup, PolicyCommand};

#[derive(Parser)]
#[command(
    name = "steward-policy",
    about = "Check, query, explain and export Steward policy files"
)]
struct Args {
    #[command(subcommand)]
    cmd: PolicyCommand,
}

fn main() {
    let args = Args::parse();
    std::process::exit(run(args.cmd, &NoLookup));
}
