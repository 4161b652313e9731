//! Wire types shared by every Steward component.
//!
//! This crate is the vocabulary the hub, the privileged helper and the UI server agree
//! on: workflow and task ids, the 22 Cylc operation names and their elevation class,
//! the claims of the hub-signed JWT, the helper's JSON verbs, the WebSocket messages,
//! and where a UI server runs (placement and endpoint). The audit record is not here:
//! it belongs to the `steward-audit` crate, which alone writes and reads the log. This
//! crate must not do I/O: every other crate depends on it, and the privileged helper
//! links it, so it stays small and obviously side-effect free.

pub mod bootstrap;
pub mod claims;
pub mod helper;
pub mod ids;
#[cfg(feature = "jwt")]
pub mod jwt_crypto;
pub mod location;
pub mod ops;
pub mod wire;

pub use ids::{IdError, Target, TaskId, WorkflowId};
pub use location::{Endpoint, Placement};
pub use ops::{OpClass, OpSet, Operation};
