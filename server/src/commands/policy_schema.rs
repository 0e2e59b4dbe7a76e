//! `tollgate policy schema`: print the combined Cedar schema (the core's
//! fragment plus every family's) as Cedar schema text, for the cedar CLI and
//! editors. It is exactly the schema `check`, `policy test` and `serve`
//! validate policies against.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;

use super::load_config;
use crate::app;

/// Print the schema; with a config, only after it loads.
pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(path) = config
        && let Err(code) = load_config(path)
    {
        return Ok(code);
    }
    let schema = app::policy_schema().map_err(|e| anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "// Tollgate's Cedar schema: the core and the tool families {}.\n\
         // Printed by `tollgate policy schema`; policies are validated against it.",
        schema.families().join(", ")
    )?;
    out.write_all(schema.to_cedar().as_bytes())?;
    if !schema.to_cedar().ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
