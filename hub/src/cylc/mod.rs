//! Hosting the real Cylc UI server (`cylc hubapp`, a JupyterHub single-user server)
//! behind Steward: pure pieces the hub's routes are wired from.
//!
//! - [`graphql`]: what a GraphQL request or WebSocket frame runs, as Steward operations
//!   on the owner's workflows (the gate; decisions stay with policy).
//! - [`answer`]: a denial in GraphQL's error shape; each forwarded field's outcome.
//! - [`oauth`]: Steward as the OAuth 2 provider (codes with PKCE, tokens, `/hub/api/user`).
//! - [`singleuser`]: the `JUPYTERHUB_*` environment and `cylc hubapp` arguments of a spawn.
//! - [`site_auth`]: the UI server's own `site_authorization`, written from Steward's policy.
//!
//! None of these decides policy, and only `site_auth::write` touches the file system;
//! the hub's routes call them.
pub mod answer;
pub mod graphql;
pub mod oauth;
pub mod singleuser;
pub mod site_auth;
