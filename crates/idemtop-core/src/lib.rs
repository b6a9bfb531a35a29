//! idemtop's core: everything about the watched table that is not the screen.
//!
//! [`db`] talks SQL and returns typed structs (the table model, snapshot, records, maintenance
//! by method, partitions, locks, horizon, cron, migrations); [`refresh`] is one refresh and the
//! session refreshes share; [`checks`] are pure functions over gathered facts, one file each;
//! [`config`] is the configuration file; [`guide`] the migration guide's shared facts;
//! [`ident`], [`sanitize`] and [`format`] are the small helpers every layer uses.
//!
//! This crate depends on no UI crate and on no other idemtop crate.

pub mod checks;
pub mod config;
pub mod db;
pub mod format;
pub mod guide;
pub mod ident;
pub mod refresh;
pub mod sanitize;
