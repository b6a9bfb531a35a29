//! Everything that talks SQL. Returns typed structs; knows nothing of the screen.

pub mod connect;
pub mod cron;
pub mod maintenance;
pub mod migrate;
pub mod partitions;
pub mod records;
pub mod snapshot;
pub mod table;
