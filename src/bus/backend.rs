//! The engine-side request and error types the [`Backend`](super::Backend)
//! trait speaks: they belong to the engine (`src/daemon/engine.rs`).

pub use crate::daemon::engine::{EngineError, OutboundRequest};
