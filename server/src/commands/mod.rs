//! One module per command; [`run`] dispatches. Commands return an exit code;
//! errors reach the user through anyhow at this edge only.

mod audit;
mod check;
pub mod demo;
pub mod masking;
mod policy_schema;
mod policy_test;
mod review;
pub mod serve;
mod token;

use std::process::ExitCode;

use crate::cli::{Cli, Command, MaskingCommand, PolicyCommand};
use crate::config::Config;

/// Load a config or print its `file:line:col: message` lines.
pub(crate) fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    let config = Config::load(path).map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })?;
    for w in config.warnings() {
        eprintln!("{w}");
    }
    Ok(config)
}

/// Run a parsed command line. A closed stdout (`tollgate audit list | head`)
/// ends the command quietly with success, as for any Unix filter.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match dispatch(cli).await {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// Did the command stop because the reader of its output went away?
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let log_format = cli.log_format.clone();
    match cli.command {
        Command::Serve { config, stdio } => {
            serve::run(&config.config, stdio, log_format.as_deref()).await
        }
        Command::Demo { listen, data_dir } => {
            demo::run(&listen, &data_dir, log_format.as_deref()).await
        }
        Command::Check { config } => check::run(&config.config),
        Command::Token {
            config,
            sub,
            groups,
            ttl,
        } => token::run(&config.config, &sub, &groups, &ttl),
        Command::Policy {
            command: PolicyCommand::Test { config, cases },
        } => policy_test::run(&config.config, &cases),
        Command::Policy {
            command: PolicyCommand::Schema { config },
        } => policy_schema::run(config.as_deref()),
        Command::Audit { command } => audit::run(command).await,
        Command::Masking {
            command: MaskingCommand::Classify { config },
        } => masking::classify(&config.config, log_format.as_deref()).await,
        Command::Approvals { command } => review::run(command).await,
    }
}
