//! One runner per subcommand; `main` only parses and dispatches.

pub mod bench;
pub mod check;
pub mod cleanup;
pub mod demo;
pub mod metrics;
pub mod migrate;
pub mod schema;
pub mod snapshot;
pub mod watch;
