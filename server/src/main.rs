//! The `tollgate` binary: parse the command line, run the command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the data path allocates many
/// small, short-lived buffers across worker threads, where glibc malloc cost
/// ~15 % of a governed call's CPU in the gateway benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
