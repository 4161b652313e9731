//! Reading the bootstrap the hub writes on stdin.

use std::io::Read;
use steward_protocol::bootstrap::UiServerBootstrap;

/// Largest bootstrap accepted (certs + keys are a few KiB).
pub const MAX_BOOTSTRAP_BYTES: u64 = 1024 * 1024;

/// Reads stdin to EOF (at most 1 MiB) and parses the bootstrap. The key stays in
/// memory only; errors never echo the input.
pub fn read_from(mut input: impl Read) -> anyhow::Result<UiServerBootstrap> {
    let mut buf = Vec::new();
    (&mut input)
        .take(MAX_BOOTSTRAP_BYTES + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_BOOTSTRAP_BYTES {
        anyhow::bail!("bootstrap on stdin is larger than 1 MiB");
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        anyhow::bail!("no bootstrap on stdin: the hub writes a JSON UiServerBootstrap there");
    }
    let b: UiServerBootstrap = serde_json::from_slice(&buf).map_err(|e| {
        // serde_json's message names a line/column, never the content.
        anyhow::anyhow!("bootstrap on stdin is not a valid UiServerBootstrap: {e}")
    })?;
    // Scrub our copy of the raw bytes (the key was in them).
    buf.iter_mut().for_each(|b| *b = 0);
    if !steward_protocol::ids::validate_user_name(&b.owner) {
        anyhow::bail!("bootstrap owner {:?} is not a valid user name", b.owner);
    }
    if steward_protocol::ids::validate_workflow_name(&b.server).is_err() || b.server.contains('/') {
        anyhow::bail!("bootstrap server name {:?} is not valid", b.server);
    }
    Ok(b)
}
