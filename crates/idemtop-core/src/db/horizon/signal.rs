//! Cancelling or terminating a horizon holder, after checking it is still the same one.

use super::*;

/// What came of a cancel or terminate request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    /// Sent.
    Signalled,
    /// The pid is gone: nothing to do.
    Gone,
    /// The pid is now another backend, or the same one in another transaction: nothing sent.
    Changed,
}

/// Cancel the query of (`terminate` false) or terminate the backend `t`, only if it is still
/// the backend, in the transaction, the operator saw. A missing privilege is said in one
/// sentence naming the role and what it needs.
pub async fn signal(
    conn: &mut PgConnection,
    t: &SignalTarget,
    terminate: bool,
) -> Result<SignalOutcome> {
    type Seen = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>);
    let now: Option<Seen> = sqlx::query_as(
        "SELECT backend_start, xact_start, usename::text FROM pg_stat_activity WHERE pid = $1",
    )
    .bind(t.pid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((backend_start, xact_start, owner)) = now else {
        return Ok(SignalOutcome::Gone);
    };
    // Without pg_read_all_stats another role's session shows no start times: not provably the
    // same backend, so nothing is sent.
    if backend_start != Some(t.backend_start) || xact_start != t.xact_start {
        return Ok(SignalOutcome::Changed);
    }
    // Checked again in the same statement that signals: nothing changes in between.
    let sql = if terminate {
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE pid = $1 AND backend_start = $2 AND xact_start IS NOT DISTINCT FROM $3"
    } else {
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
          WHERE pid = $1 AND backend_start = $2 AND xact_start IS NOT DISTINCT FROM $3"
    };
    let r: Result<Option<bool>, sqlx::Error> = sqlx::query_scalar(sql)
        .bind(t.pid)
        .bind(t.backend_start)
        .bind(t.xact_start)
        .fetch_optional(&mut *conn)
        .await;
    match r {
        Ok(Some(true)) => Ok(SignalOutcome::Signalled),
        Ok(Some(false)) | Ok(None) => Ok(SignalOutcome::Gone),
        Err(e) if crate::db::connect::db_sqlstate(&e).as_deref() == Some("42501") => {
            let role: String = sqlx::query_scalar("SELECT current_user::text")
                .fetch_one(&mut *conn)
                .await
                .unwrap_or_else(|_| "<role>".into());
            let owner = owner.unwrap_or_else(|| "another role".into());
            anyhow::bail!(
                "permission denied: role {role} may not {verb} pid {pid} of role {owner}: it needs to be \
                 a superuser, be {owner} (or a member of it), or be granted pg_signal_backend \
                 (GRANT pg_signal_backend TO {qr}); a superuser's backend only a superuser may signal",
                role = sanitize::line(&role),
                verb = if terminate { "terminate" } else { "cancel the query of" },
                pid = t.pid,
                owner = sanitize::line(&owner),
                qr = crate::ident::display_quoted(&role),
            )
        }
        Err(e) => Err(e.into()),
    }
}
