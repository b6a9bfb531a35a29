//! Record browser data layer: keyset pages, look-up by key, delete one record.
