//! Everything that talks SQL. Returns typed structs; knows nothing of the screen.

/// SQL: the relations of this database under an ACCESS EXCLUSIVE lock, held or requested, each
/// (`relation`) with who holds or awaits it (`what`). Size functions would queue behind such a
/// lock, so the refresh and the partitions list do not probe those relations. A macro so that
/// it can be spliced into constant SQL with `concat!`.
macro_rules! access_exclusive_locks_sql {
    () => {
        "SELECT l.relation,
                string_agg(DISTINCT format('%s %s by pid %s', l.mode,
                           CASE WHEN l.granted THEN 'held' ELSE 'requested' END, l.pid), ', ') AS what
           FROM pg_locks l
          WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          GROUP BY l.relation"
    };
}

pub mod bloat;
pub mod connect;
pub mod cron;
pub mod horizon;
pub mod locks;
pub mod maintenance;
pub mod migrate;
pub mod partitions;
pub mod records;
pub mod session;
pub mod shape;
pub mod snapshot;
pub mod table;
pub mod ts;

/// The cleanup planner lives with the methods it chooses between ([`maintenance::plan`]).
pub use maintenance::plan;
