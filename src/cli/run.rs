//! `smsgate run`: the daemon. Everything lives in [`crate::daemon::run`];
//! this module only names it for the dispatcher.

pub use crate::daemon::run::{run, RunArgs};
