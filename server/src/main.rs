//! The `tollgate` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tollgate_server::init_crypto();
    let cli = tollgate_server::cli::Cli::parse();
    match tollgate_server::commands::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
