//! `tollgate token`: mint an HS256 token for development and demos.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};

use super::load_config;
use crate::{app, config::parse_duration};

/// Print the token alone on stdout.
pub fn run(path: &Path, sub: &str, groups: &[String], ttl: &str) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let ttl = parse_duration(ttl).map_err(|e| anyhow!("--ttl: {e}"))?;
    let auth = app::authenticator(&config)?
        .context("no [auth] key configured: set auth.hs256_secret to mint tokens")?;
    let groups: Vec<String> = groups.iter().filter(|g| !g.is_empty()).cloned().collect();
    let token = auth
        .mint_hs256(sub, &groups, ttl)
        .map_err(|e| anyhow!("{e}"))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
