use std::process::ExitCode;

use clap::Parser;
use idemtop::cli::{Cli, Command};
use idemtop::commands;

fn main() -> ExitCode {
    // glibc gives each thread that allocates an arena of its own (up to 8 per core); the
    // runtime's worker and blocking threads then hold memory freed long ago. Two arenas are
    // plenty for a dashboard, and keep its resident memory near what it uses.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
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
    if cli.global.print_config {
        print!("{}", idemtop::config::Config::default_toml());
        return ExitCode::SUCCESS;
    }
    let config = match idemtop::config::Config::load(cli.global.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("idemtop: {e:#}");
            // `check` keeps the Nagios convention: a problem that is not the table's is UNKNOWN.
            let code = if matches!(cli.command, Some(Command::Check(_))) {
                3
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    // `--target` gives the one-table commands that target's connection and table; `check` and
    // `metrics` resolve the whole fleet themselves (and report a bad target their own way).
    let global = match cli.command {
        Some(Command::Check(_) | Command::Metrics(_)) => cli.global.clone(),
        _ => match idemtop::fleet::global_for_target(&config, &cli.global) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("idemtop: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    // The mapping flags (--key, --expires, --ttl, ...) are the [[table]] section of this table,
    // in place of the configuration file's.
    let config = match global.mapping_from_flags() {
        Ok(None) => config,
        Ok(Some(entry)) => {
            let mut config = config;
            config
                .tables
                .retain(|e| !(e.schema == entry.schema && e.table == entry.table));
            config.tables.push(entry);
            config
        }
        Err(e) => {
            eprintln!("idemtop: {e:#}");
            let code = if matches!(cli.command, Some(Command::Check(_))) {
                3
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    let exit = |code: i32| {
        if code != 0 {
            std::process::exit(code)
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate { action, layout }) => {
                commands::migrate::run(&global, action, layout.into()).await
            }
            Some(Command::Snapshot { format, exact }) => {
                commands::snapshot::run(&global, &config, format, exact)
                    .await
                    .map(exit)
            }
            Some(Command::Cleanup(args)) => commands::cleanup::run(&global, &config, &args)
                .await
                .map(exit),
            Some(Command::Check(args)) => commands::check::run(&global, &config, &args)
                .await
                .map(exit),
            Some(Command::Metrics(args)) => commands::metrics::run(&global, &config, &args)
                .await
                .map(exit),
            Some(Command::Schema(args)) => {
                let table_given = idemtop::cli::table_given(std::env::args_os());
                commands::schema::run(&global, &config, &args, table_given)
                    .await
                    .map(exit)
            }
            Some(Command::Bench { args }) => commands::bench::run(&args).map(exit),
            Some(Command::Demo(args)) => commands::demo::run(&global, &config, &args).await,
            Some(Command::Watch) | None => commands::watch::run(&global, &config).await,
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
