//! Command-line front ends of the subcommands. `main.rs` only dispatches;
//! each subcommand's argument parsing and output live here so that tests
//! can drive them through the library.

pub mod client;
pub mod consent;
pub mod demo;
pub mod doctor;
pub mod forget;
pub mod inbox;
pub mod modems;
pub mod pdu;
pub mod run;
pub mod send;
pub mod sim;
pub mod status;
pub mod udev;
