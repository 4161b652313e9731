//! `steward database migrate`: moves a hub from its SQLite file to the PostgreSQL
//! database its configuration now names ([`crate::store::migrate`]). Run it with the
//! hub stopped, after adding `[database] url` to the configuration.

use crate::config::HubConfig;
use crate::store::{Clock, SqliteStore, Store};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DatabaseCmd {
    /// Copy sessions, API tokens, the server registry and overviews from the hub's
    /// SQLite file (<data_dir>/hub.db) into the PostgreSQL database of [database] url,
    /// which must be empty. Stop the hub first.
    Migrate {
        #[arg(short, long, default_value = "/etc/steward/steward.toml")]
        config: PathBuf,
    },
}

pub async fn run(cmd: DatabaseCmd) -> anyhow::Result<()> {
    let DatabaseCmd::Migrate { config } = cmd;
    let cfg = HubConfig::load(&config)?;
    let url = cfg.database.url.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "{}: [database] url is not set; add the PostgreSQL url to migrate to",
            config.display()
        )
    })?;
    let file = cfg.data_dir.join("hub.db");
    if !file.exists() {
        anyhow::bail!("{}: no SQLite state to migrate", file.display());
    }
    let from = SqliteStore::open(&file, Clock::default())?;
    let to = crate::store::postgres::open_configured(
        url,
        cfg.database.password_file.as_deref(),
        Clock::default(),
    )
    .await?;
    let copied = crate::store::migrate::copy_all(&from, &to).await?;
    println!(
        "copied {copied} from {} to {} ({} schema version {}); the hub now uses PostgreSQL",
        file.display(),
        crate::store::postgres::redact_url(url),
        to.kind(),
        to.schema_version().await?
    );
    Ok(())
}
