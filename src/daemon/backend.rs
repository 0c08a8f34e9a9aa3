//! The engine as the bus's [`Backend`]: the bus decides no policy, so
//! sends go through the engine's validation, routing and queue.

use std::future::Future;

use super::engine::{Engine, EngineError, OutboundRequest};
use crate::bus::Backend;
use crate::modem::ModemView;
use crate::store::{Enqueued, Store};

impl Backend for Engine {
    fn store(&self) -> &Store {
        Engine::store(self)
    }

    fn send(
        &self,
        req: OutboundRequest,
    ) -> impl Future<Output = Result<Enqueued, EngineError>> + Send {
        Engine::send(self, req)
    }

    fn modems(&self) -> Vec<ModemView> {
        Engine::modems(self)
    }
}
