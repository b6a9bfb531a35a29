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
            Some(Command::Snapshot { format, exact }) => {
                commands::snapshot::run(&cli.global, format, exact).await
            }
            Some(Command::Cleanup(args)) => {
                commands::cleanup::run(&cli.global, &args)
                    .await
                    .map(|code| {
                        if code != 0 {
                            std::process::exit(code)
                        }
                    })
            }
            Some(Command::Demo(args)) => commands::demo::run(&cli.global, &args).await,
            Some(Command::Watch) | None => commands::watch::run(&cli.global).await,
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
