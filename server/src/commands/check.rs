//! `tollgate check`: validate config, connections, masking and policies.

use std::path::Path;
use std::process::ExitCode;

use super::load_config;
use crate::app;

/// Exit 0 when everything is valid, else 1 with one `file:line:col: message` per problem.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let errs = app::check(&config);
    if errs.is_empty() {
        let n = app::policies(&config).map(|p| p.len()).unwrap_or(0);
        println!(
            "{}: ok ({} connection(s), {n} polic{})",
            path.display(),
            config.connections.len(),
            if n == 1 { "y" } else { "ies" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for e in errs {
            eprintln!("{e}");
        }
        Ok(ExitCode::from(1))
    }
}
