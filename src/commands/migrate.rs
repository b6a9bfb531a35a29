//! `idemtop migrate run|revert|status`.

use anyhow::Result;

use crate::cli::{Global, MigrateAction};
use crate::db::migrate::{self, Layout};

pub async fn run(global: &Global, action: MigrateAction, layout: Layout) -> Result<()> {
    let table = global.table_ref()?;
    let mut conn = global.connect_config().connect().await?;
    match action {
        MigrateAction::Run => {
            for outcome in migrate::run_layout(&mut conn, &table.schema, layout).await? {
                println!("{outcome}");
            }
        }
        MigrateAction::Revert => println!(
            "{}",
            migrate::revert_layout(&mut conn, &table.schema, layout).await?
        ),
        MigrateAction::Status => {
            for s in migrate::status_layout(&mut conn, &table.schema, layout).await? {
                let state = match (s.applied, s.modified) {
                    (true, false) => "applied",
                    (true, true) => "applied (file changed since)",
                    (false, _) => "pending",
                };
                println!("{:03} {:<40} {state}", s.version, s.description);
            }
        }
    }
    Ok(())
}
