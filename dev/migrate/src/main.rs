//! `migrate-node`: the command line around [`migrate::run`]; see `--help` and the crate docs.
use std::process::ExitCode;

use migrate::{Command, HELP, MigrateError, Options, Report, Target};

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Command::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(e) => return fail(&e),
    };
    match migrate(options).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::from(report.exit_code())
        }
        Err(e) => fail(&e),
    }
}

async fn migrate(options: Options) -> Result<Report, MigrateError> {
    let target = Target::from_env()?;
    let db = migrate::connect(&target).await?;
    migrate::run(&db, options, &mut std::io::stderr()).await
}

fn fail(e: &MigrateError) -> ExitCode {
    eprintln!("migrate-node: error: {e}");
    ExitCode::from(e.exit_code())
}
