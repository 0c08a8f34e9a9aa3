//! Command-line front ends of the subcommands. `main.rs` only dispatches;
//! each subcommand's argument parsing and output live here so that tests
//! can drive them through the library.

pub mod pdu;
pub mod run;
pub mod sim;
pub mod udev;
