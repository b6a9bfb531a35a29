//! Which column types a role accepts.

use crate::db::table::{Column, ColumnKind};

/// The column types a role accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    Any,
    Ts,
    Int,
    Text,
    Json,
    Bytea,
    Uuid,
    /// An array (zero2prod's `header_pair[]`).
    Array,
    /// A stored response: text, json/jsonb or bytea.
    Payload,
    /// Something shown as text: text, an integer, a uuid or another scalar (an enum).
    Scalar,
}

impl Fit {
    pub(super) fn accepts(self, c: &Column) -> bool {
        let array = c.type_name.ends_with("[]");
        match self {
            Fit::Any => true,
            Fit::Ts => c.kind.is_timestamp(),
            Fit::Int => c.kind == ColumnKind::Integer,
            Fit::Text => c.kind == ColumnKind::Text,
            Fit::Json => c.kind == ColumnKind::Json,
            Fit::Bytea => c.kind == ColumnKind::Bytea,
            Fit::Uuid => c.kind == ColumnKind::Uuid,
            Fit::Array => array,
            Fit::Payload => matches!(
                c.kind,
                ColumnKind::Text | ColumnKind::Json | ColumnKind::Bytea
            ),
            Fit::Scalar => {
                !array
                    && matches!(
                        c.kind,
                        ColumnKind::Text
                            | ColumnKind::Integer
                            | ColumnKind::Uuid
                            | ColumnKind::Other
                    )
            }
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Fit::Any => "any type",
            Fit::Ts => "a timestamp",
            Fit::Int => "an integer",
            Fit::Text => "text",
            Fit::Json => "json or jsonb",
            Fit::Bytea => "bytea",
            Fit::Uuid => "a uuid",
            Fit::Array => "an array",
            Fit::Payload => "text, json, jsonb or bytea",
            Fit::Scalar => "text, an integer, a uuid, an enum or another scalar",
        }
    }
}
