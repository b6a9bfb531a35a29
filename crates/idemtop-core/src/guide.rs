//! Facts of the migration guide that every layer shares: migration 046's cleanup function,
//! the application-level cleanup interval and the retention (TTL) policy.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ident::Ident;

/// Migration 046's cleanup function.
pub const CLEANUP_FUNCTION: &str = "cleanup_expired_idempotency_records";

/// [`CLEANUP_FUNCTION`] as an identifier, to qualify with the table's schema
/// ([`TableRef::sibling`](crate::ident::TableRef::sibling)).
pub fn cleanup_function() -> Ident {
    Ident::new(CLEANUP_FUNCTION).expect("the function's name is a valid identifier")
}

/// The guide's application-level cleanup interval.
pub const DEFAULT_CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// How long a stored result stays valid, per operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlPolicy {
    pub default: Duration,
    pub per_operation: BTreeMap<String, Duration>,
}

impl Default for TtlPolicy {
    /// The guide's retention: 24 hours, 1 hour for the sensitive `payment` and `transfer`.
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        Self {
            default: 24 * hour,
            per_operation: [
                ("payment".to_string(), hour),
                ("transfer".to_string(), hour),
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl TtlPolicy {
    /// One TTL for every operation.
    pub fn uniform(ttl: Duration) -> Self {
        Self {
            default: ttl,
            per_operation: BTreeMap::new(),
        }
    }

    /// This policy with `operation`'s TTL set to `ttl`.
    pub fn with(mut self, operation: &str, ttl: Duration) -> Self {
        self.per_operation.insert(operation.to_string(), ttl);
        self
    }

    pub fn ttl_for(&self, operation: &str) -> Duration {
        self.per_operation
            .get(operation)
            .copied()
            .unwrap_or(self.default)
    }
}
