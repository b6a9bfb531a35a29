//! The table's effective mapping as a refresh uses it ([`TableMapping`]: resolved once per read
//! of the table model) and as a snapshot reports it ([`MappingReport`]: the one message, the
//! missing roles, whether cleanup may run and by what rule, the referencing tables).

use serde::Serialize;

use crate::db::maintenance::{DeleteRule, ReferenceEffect};
use crate::db::shape::{self, MappedSql, Mapping, MappingFields, MappingSource, Role, TableEntry};
use crate::db::table::TableInfo;
use crate::ident::TableRef;
use crate::sanitize;

/// The mapping of the watched table, resolved from the `[[table]]` sections and the table
/// model: what every query of a refresh asks.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMapping {
    pub mapping: Mapping,
    pub sql: MappedSql,
    pub report: MappingReport,
}

/// What a snapshot says about the mapping. JSON (`mapping`): `source` (`config`, `detected`,
/// or null when the config's section does not fit), `shape` (`guide`, `stripe`, ... or null),
/// `columns` (the `[[table]]` keys), `missing` (roles: `key`, `expiry`, `created`, `status`,
/// `payload`, `operation`, `in_flight`, `zone`), `message`, `error`, `cleanup_rule`,
/// `cleanup_refused`, `referenced_by`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappingReport {
    pub source: Option<MappingSource>,
    pub shape: Option<&'static str>,
    pub columns: MappingFields,
    pub missing: Vec<Role>,
    /// One message: the table, what was recognised, every missing role and how to map it.
    pub message: String,
    /// The config's section does not fit the table (nothing is mapped then).
    pub error: Option<String>,
    /// What cleanup deletes, in words, when it may run.
    pub cleanup_rule: Option<String>,
    /// Why cleanup is refused, when it is.
    pub cleanup_refused: Option<String>,
    /// The foreign keys of other tables that point at this one.
    pub referenced_by: Vec<ReferenceEffect>,
    /// The mapping's columns as SQL, for the queries that read a snapshot's table again
    /// (the checks' facts).
    #[serde(skip)]
    pub sql: MappedSql,
}

impl MappingReport {
    /// `Some("n/a: no <role> column (map one in config)")` when `role` is not mapped.
    pub fn na(&self, role: Role) -> Option<String> {
        self.missing
            .contains(&role)
            .then(|| shape::not_mapped(role))
    }

    /// The table has a mapped in-flight state (a state machine: its rows are updated).
    pub fn has_inflight(&self) -> bool {
        !self.missing.contains(&Role::InFlight)
    }

    /// Nothing to say: the guide's own table, detected, nothing missing.
    pub fn is_guide(&self) -> bool {
        self.shape == Some("guide") && self.error.is_none()
    }

    /// The report of the guide's table as detected (for tests and fixtures).
    pub fn guide() -> MappingReport {
        TableMapping::guide().report
    }
}

/// The guide's mapping, as `idemtop schema` prints it.
const GUIDE: &str = r#"key = ["request_id"]
expires = "expires_at"
created = "created_at"
status = "status_code"
payload = "result_payload"
operation = ["operation"]"#;

impl TableMapping {
    /// The mapping of `table`: its `[[table]]` section when there is one (an error when it does
    /// not fit: nothing is mapped then, and the message says why), else the detection.
    pub fn resolve(entries: &[TableEntry], table: &TableRef, info: &TableInfo) -> TableMapping {
        match shape::effective(entries, table, info) {
            Ok(eff) => {
                let d = eff.described(table, info);
                let rule = DeleteRule::of(&eff, table, info);
                TableMapping {
                    sql: MappedSql::of(&eff.mapping),
                    report: MappingReport {
                        source: Some(eff.source),
                        shape: d.shape.map(shape::KnownShape::id),
                        columns: eff.mapping.clone().into(),
                        missing: d.missing.clone(),
                        message: sanitize::text(&d.message()),
                        error: None,
                        cleanup_rule: rule.as_ref().ok().map(DeleteRule::describe),
                        cleanup_refused: rule.err(),
                        referenced_by: ReferenceEffect::of(info),
                        sql: MappedSql::of(&eff.mapping),
                    },
                    mapping: eff.mapping,
                }
            }
            Err(e) => {
                let error = sanitize::line(&e);
                TableMapping {
                    mapping: Mapping::default(),
                    sql: MappedSql::default(),
                    report: MappingReport {
                        source: None,
                        shape: None,
                        columns: MappingFields::default(),
                        missing: Role::ALL.to_vec(),
                        message: format!(
                            "{table}: {error}. Until it fits, nothing is mapped: only what needs no column is shown \
                             (`idemtop schema --table {}` prints the detected mapping)",
                            sanitize::line(table.table.as_str())
                        ),
                        cleanup_refused: Some(format!("cleanup refused: {error}")),
                        error: Some(error),
                        cleanup_rule: None,
                        referenced_by: ReferenceEffect::of(info),
                        sql: MappedSql::default(),
                    },
                }
            }
        }
    }

    /// The guide's table as detected (no table model needed).
    pub fn guide() -> TableMapping {
        let mapping: Mapping = toml::from_str(GUIDE).unwrap_or_default();
        TableMapping {
            sql: MappedSql::of(&mapping),
            report: MappingReport {
                source: Some(MappingSource::Detected),
                shape: Some("guide"),
                columns: mapping.clone().into(),
                missing: vec![Role::InFlight],
                message: "recognised as the guide's idempotency_records (migration 045)".into(),
                error: None,
                cleanup_rule: Some("expires_at <= cutoff".into()),
                cleanup_refused: None,
                referenced_by: Vec::new(),
                sql: MappedSql::of(&mapping),
            },
            mapping,
        }
    }

    /// Whether `role` is mapped.
    pub fn has(&self, role: Role) -> bool {
        !self.report.missing.contains(&role)
    }
}
