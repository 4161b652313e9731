//! `steward audit verify -c steward.toml --deployment DIR...`: the bridge between the
//! audit crate (which knows no store) and the hubs' database. It reads the leader's
//! deployment checkpoint from the store the configuration names and the audit key
//! from its `data_dir`, then hands both to `steward_audit::cli::run_deployment`.
//! Read-only: it creates no key and no database.

use crate::config::HubConfig;
use crate::pki::{load_key, AUDIT_KEY_FILE};
use crate::store::{Clock, SqliteStore, Store};
use ed25519_dalek::VerifyingKey;
use std::path::{Path, PathBuf};

/// Where the packaged hub's configuration is.
pub const DEFAULT_CONFIG: &str = "/etc/steward/steward.toml";

/// What the command needs from the hub's side, or why it cannot start (exit 2): the
/// checkpoint (from `checkpoint`, else the database), where it came from, the key
/// (from `key`, else the data_dir). The configuration is read only when needed.
async fn load(
    config: &Path,
    key: Option<&Path>,
    checkpoint: Option<&Path>,
) -> Result<(String, String, VerifyingKey), String> {
    let cfg = || HubConfig::load(config).map_err(|e| format!("{}: {e:#}", config.display()));
    let vk = match key {
        Some(path) => steward_audit::cli::load_verifying_key(path)?,
        None => {
            let cfg = cfg()?;
            // The private key file the hubs share; only its public half is used.
            load_key(&cfg.data_dir.join(AUDIT_KEY_FILE))
                .map_err(|e| format!("{e} (give the deployment's key with --key)"))?
                .verifying_key()
        }
    };
    if let Some(path) = checkpoint {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the deployment checkpoint {}: {e}",
                path.display()
            )
        })?;
        return Ok((text, path.display().to_string(), vk));
    }
    let cfg = cfg()?;
    let (store, from): (Box<dyn Store>, String) = match &cfg.database.url {
        Some(url) => {
            let store = crate::store::postgres::open_configured(
                url,
                cfg.database.password_file.as_deref(),
                Clock::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            (
                Box::new(store),
                format!("in {}", crate::store::postgres::redact_url(url)),
            )
        }
        None => {
            let file = cfg.data_dir.join("hub.db");
            if !file.exists() {
                return Err(format!(
                    "{}: no state store here ([database] url is not set, so the hub keeps its state in this file)",
                    file.display()
                ));
            }
            let store = SqliteStore::open(&file, Clock::default()).map_err(|e| e.to_string())?;
            (Box::new(store), format!("in {}", file.display()))
        }
    };
    let text = store
        .audit_checkpoint()
        .await
        .map_err(|e| format!("reading the deployment checkpoint {from}: {e}"))?
        .ok_or_else(|| {
            format!(
                "no deployment checkpoint {from} yet: the leading hub writes one within 10 s of the hubs' first audit records; is a hub running on this database?"
            )
        })?;
    Ok((text, from, vk))
}

/// Runs the deployment verification; returns the exit code (0 intact, 1 not, 2 when
/// the configuration, key or database cannot be used).
pub fn verify_deployment(
    config: &Path,
    dirs: &[PathBuf],
    key: Option<&Path>,
    checkpoint: Option<&Path>,
    strict: bool,
) -> i32 {
    let loaded = actix_web::rt::System::new().block_on(load(config, key, checkpoint));
    let (text, from, vk) = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("steward audit verify --deployment: {e}");
            return 2;
        }
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    steward_audit::cli::run_deployment(
        &text,
        &from,
        dirs,
        Some(&vk),
        strict,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}
