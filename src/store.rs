//! The idempotency store: what a service uses to look up and record results by key.
