//! `idemtop migrate run|revert|status`.

use anyhow::{bail, Result};

use crate::db::migrate::{self, Layout};
use crate::options::{Global, MigrateAction};

/// The table the embedded migrations create; they cannot create it under another name.
const MIGRATED_TABLE: &str = "idempotency_records";

pub async fn run(global: &Global, action: MigrateAction, layout: Layout) -> Result<()> {
    let table = global.table_ref()?;
    if table.table.as_str() != MIGRATED_TABLE {
        bail!(
            "the migrations create the guide's table {MIGRATED_TABLE} and cannot name it {}: \
             drop --table (--schema chooses where it goes), and rename it afterwards if you must",
            crate::sanitize::line(table.table.as_str())
        );
    }
    let connect = global.connect_config();
    let mut conn = connect.connect().await?;
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
            let rows = migrate::status_layout(&mut conn, &table.schema, layout).await?;
            let layout = match layout {
                Layout::Plain => "",
                Layout::Partitioned => ", partitioned layout",
            };
            println!(
                "migrations in {}, schema {}{layout}:",
                connect.describe(),
                crate::sanitize::line(table.schema.as_str())
            );
            for s in rows {
                let state = match (s.applied, s.modified) {
                    (true, false) => "applied",
                    (true, true) => "applied (file changed since)",
                    (false, _) => "pending",
                };
                match s.note {
                    Some(note) => {
                        println!("{:03} {:<40} {state}: {note}", s.version, s.description)
                    }
                    None => println!("{:03} {:<40} {state}", s.version, s.description),
                }
            }
        }
    }
    Ok(())
}
