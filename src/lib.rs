//! idemtop: a terminal dashboard for PostgreSQL idempotency-key tables.
//!
//! Layers: [`db`] talks SQL and returns typed structs; [`app`] holds state and the pure
//! `update(state, event)`; [`ui`] draws state and never does I/O; [`worker`] runs database
//! requests on tasks and reports back over channels.

pub mod app;
pub mod bench;
pub mod checks;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
#[doc(hidden)]
pub mod fixtures;
pub mod fleet;
pub mod format;
pub mod ident;
pub mod pgtemp;
pub mod sanitize;
pub mod store;
pub mod ui;
pub mod worker;
pub mod workload;
