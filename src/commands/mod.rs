//! One runner per subcommand; `main` only parses and dispatches.

pub mod cleanup;
pub mod demo;
pub mod migrate;
pub mod snapshot;
pub mod watch;
