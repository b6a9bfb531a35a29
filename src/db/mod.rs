//! Everything that talks SQL. Returns typed structs; knows nothing of the screen.

pub mod connect;
pub mod migrate;
pub mod table;
pub mod cron;
pub mod maintenance;
pub mod records;
pub mod snapshot;
