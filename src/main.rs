use std::process::ExitCode;

use clap::Parser;
use idemtop::cli::{Cli, Command};
use idemtop::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("idemtop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate { action }) => commands::migrate::run(&cli.global, action).await,
            None => anyhow::bail!("the dashboard is not built yet; try `idemtop migrate status`"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idemtop: {e:#}");
            ExitCode::FAILURE
        }
    }
}
