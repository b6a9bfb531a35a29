//! Maintenance: batched cleanup of expired rows, ANALYZE, VACUUM.
