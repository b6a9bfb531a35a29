//! idemtop: a terminal dashboard for PostgreSQL idempotency-key tables (the binary's library).
//!
//! Layers (see ARCHITECTURE.md): `idemtop-core` ([`db`], [`checks`], [`config`], ...) knows
//! nothing of the screen; this crate holds [`app`] (state and the pure `update(state, event)`),
//! [`ui`] (draws state, never does I/O), [`worker`] (runs database requests on tasks and
//! reports back over channels), [`cli`] and [`commands`].
//!
//! The modules of the lower crates are re-exported under their old paths so that the binary
//! and the tests name them in one way (`idemtop::db::...`).

pub mod app;
pub mod cli;
pub mod commands;
pub mod fleet;
pub mod options;
pub mod ui;
pub mod worker;

pub use idemtop_core::{checks, config, db, format, guide, ident, refresh, sanitize};
pub use idemtop_store as store;
#[doc(hidden)]
pub use idemtop_testkit::fixtures;
pub use idemtop_testkit::{pgtemp, workload};
