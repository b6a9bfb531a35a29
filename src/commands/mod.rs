//! One runner per subcommand; `main` only parses and dispatches.

pub mod cleanup;
pub mod migrate;
