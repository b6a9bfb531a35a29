//! What idemtop's tests, demo and benchmark share: a throwaway PostgreSQL server from the
//! machine's own binaries ([`pgtemp`]), synthetic traffic through the store ([`workload`]) and
//! hand-built snapshots for render tests ([`fixtures`]).

#[doc(hidden)]
pub mod fixtures;
pub mod pgtemp;
pub mod workload;
