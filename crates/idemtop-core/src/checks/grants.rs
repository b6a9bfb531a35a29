//! Grants: the API role holds SELECT/INSERT/DELETE and nothing that rewrites records.

use super::*;

/// `state_machine`: the table's mapping has an in-flight state (Stripe's recovery points,
/// nestarc's status, a NULL response or completion time): requests UPDATE their row as they
/// finish, so UPDATE is expected there; only the guide's shape (finished requests only) must be
/// immutable.
pub(super) fn grants_check(extras: &Extras, state_machine: bool) -> CheckResult {
    const ID: &str = "grants";
    const NAME: &str = "Grants";
    let grants = match &extras.grants {
        Err(e) => {
            return unknown(
                ID,
                NAME,
                format!("cannot read the table's privileges: {e}"),
                "",
            )
        }
        Ok(g) => g,
    };
    let t = &extras.table.qualified();
    let describe = |g: &RoleGrant| -> String {
        let mut s = g.role.clone();
        if let Some(via) = &g.via {
            s.push_str(&format!(" via {via}"));
        }
        s
    };
    let list = |pred: &dyn Fn(&RoleGrant) -> bool| -> String {
        let names: Vec<String> = grants.iter().filter(|g| pred(g)).map(describe).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let writers = list(&|g| g.has("INSERT") || g.has("DELETE"));
    let readers = list(&|g| g.has("SELECT"));
    let owner = extras
        .owner
        .as_deref()
        .map(|o| format!("owner {o}; "))
        .unwrap_or_default();
    let risky: Vec<&RoleGrant> = grants
        .iter()
        .filter(|g| !g.forbidden_on(state_machine).is_empty())
        .collect();
    if risky.is_empty() && state_machine {
        let updaters = list(&|g| g.can_update());
        return result(
            ID,
            NAME,
            Level::Ok,
            "UPDATE expected",
            format!(
                "{owner}UPDATE is expected: the table keeps an in-flight state that requests update as they \
                 finish (UPDATE: {updaters}); nobody else may TRUNCATE; INSERT/DELETE: {writers}; SELECT: {readers}"
            ),
            "",
        );
    }
    if risky.is_empty() {
        return result(
            ID,
            NAME,
            Level::Ok,
            "no UPDATE/TRUNCATE",
            format!(
                "{owner}nobody else may UPDATE or TRUNCATE; INSERT/DELETE: {writers}; SELECT: {readers}"
            ),
            "",
        );
    }
    let who: Vec<String> = risky
        .iter()
        .map(|g| {
            let what = if g.has_all() && !state_machine {
                "ALL PRIVILEGES".to_string()
            } else {
                g.forbidden_on(state_machine).join(", ")
            };
            format!("{} ({what})", describe(g))
        })
        .collect();
    let mut advice = Vec::new();
    for g in &risky {
        match &g.via {
            Some(via) => advice.push(format!("REVOKE {via} FROM {};", role_sql(&g.role))),
            None => {
                let mut revoke = Vec::new();
                if g.can_update() && !state_machine {
                    revoke.push("UPDATE");
                }
                if g.has("TRUNCATE") {
                    revoke.push("TRUNCATE");
                }
                if g.has_all() && !state_machine {
                    advice.push(format!(
                        "REVOKE ALL PRIVILEGES ON {t} FROM {r}; GRANT SELECT, INSERT, DELETE ON {t} TO {r};",
                        r = role_sql(&g.role)
                    ));
                } else {
                    advice.push(format!(
                        "REVOKE {} ON {t} FROM {};",
                        revoke.join(", "),
                        role_sql(&g.role)
                    ));
                }
            }
        }
    }
    if state_machine {
        advice.push(
            "The table is a state machine: UPDATE is expected, TRUNCATE (which empties every key at once) is not."
                .into(),
        );
    } else {
        advice.push(
            "The guide: GRANT SELECT, INSERT, DELETE to the API role only; do not grant UPDATE \
             (records are immutable) nor ALL PRIVILEGES."
                .into(),
        );
    }
    let value = risky
        .iter()
        .map(|g| format!("{}: {}", g.role, g.forbidden_on(state_machine).join("+")))
        .collect::<Vec<_>>()
        .join(", ");
    let detail = if state_machine {
        format!(
            "{owner}{} can empty the table at once (UPDATE is expected on a state machine); \
             INSERT/DELETE: {writers}; SELECT: {readers}",
            who.join(", ")
        )
    } else {
        format!(
            "{owner}{} can change stored results, which must be immutable; INSERT/DELETE: \
             {writers}; SELECT: {readers}",
            who.join(", ")
        )
    };
    result(ID, NAME, Level::Critical, value, detail, advice.join(" "))
}

pub(super) const CHECK: Check = Check {
    id: "grants",
    eval: |f| grants_check(f.extras, f.snap.mapping.has_inflight()),
};
