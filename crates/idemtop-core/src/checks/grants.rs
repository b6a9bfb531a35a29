//! Grants: the API role holds SELECT/INSERT/DELETE and nothing that rewrites records.

use super::*;

pub(super) fn grants_check(extras: &Extras) -> CheckResult {
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
        .filter(|g| !g.forbidden().is_empty())
        .collect();
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
            let what = if g.has_all() {
                "ALL PRIVILEGES".to_string()
            } else {
                g.forbidden().join(", ")
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
                if g.can_update() {
                    revoke.push("UPDATE");
                }
                if g.has("TRUNCATE") {
                    revoke.push("TRUNCATE");
                }
                if g.has_all() {
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
    advice.push(
        "The guide: GRANT SELECT, INSERT, DELETE to the API role only; do not grant UPDATE \
         (records are immutable) nor ALL PRIVILEGES."
            .into(),
    );
    let value = risky
        .iter()
        .map(|g| format!("{}: {}", g.role, g.forbidden().join("+")))
        .collect::<Vec<_>>()
        .join(", ");
    result(
        ID,
        NAME,
        Level::Critical,
        value,
        format!(
            "{owner}{} can change stored results, which must be immutable; INSERT/DELETE: \
             {writers}; SELECT: {readers}",
            who.join(", ")
        ),
        advice.join(" "),
    )
}

pub(super) const CHECK: Check = Check {
    id: "grants",
    eval: |f| grants_check(f.extras),
};
