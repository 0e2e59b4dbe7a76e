//! `tollgate masking classify`: sample every connection's columns once and
//! print the sensitive ones per connection (type, hits/sampled), never a
//! value. The run is recorded in the audit log as `serve`'s runs are.

use std::path::Path;
use std::process::ExitCode;

use super::load_config;
use crate::classify::{self, ConnectionRun};
use crate::{app, logging};

/// Run classification once and print it; exit 1 when a connection failed.
pub async fn classify(path: &Path, log_format: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    logging::init(
        log_format.or(config.logging.format.as_deref()),
        Some("warn"),
    );
    let gateway = app::gateway(&config).await?;
    let classifier = classify::classifier(&config, &gateway)?;
    if !gateway.masker().is_enabled() {
        println!("masking is off ([masking] enabled = false): nothing to classify");
        return Ok(ExitCode::SUCCESS);
    }
    if !classifier.enabled() && !classifier.has_pins() {
        println!(
            "classification is off ([masking.classification] enabled = false) and nothing is pinned"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runs = classify::run_once(&gateway, &classifier).await;
    let mut failed = false;
    for run in &runs {
        failed |= run.result.is_err();
        print!("{}", render(run));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The text of one connection's run: a heading line, then one line per
/// sensitive column.
pub fn render(run: &ConnectionRun) -> String {
    let head = format!("{} ({})", run.connection, run.kind);
    let r = match &run.result {
        Err(e) => {
            return format!("{head}: classification failed, previous classification kept: {e}\n");
        }
        Ok(None) => return format!("{head}: nothing to classify for this kind\n"),
        Ok(Some(r)) => r,
    };
    let mut out = format!(
        "{head}: {} sensitive column(s) of {}; {} value(s) sampled from {} column(s), {} exempt, {} skipped by type{}{} in {} ms\n",
        r.classified.len(),
        r.fields,
        r.sampled_values,
        r.sampled_fields,
        r.exempt_fields,
        r.skipped_fields,
        if r.failed_fields > 0 {
            format!(", {} failed", r.failed_fields)
        } else {
            String::new()
        },
        if r.complete {
            ""
        } else {
            ", OUT OF TIME (columns not reached keep their earlier classification)"
        },
        run.duration.as_millis()
    );
    let width = r
        .classified
        .iter()
        .map(|f| f.field.to_string().len())
        .max()
        .unwrap_or(0);
    for f in &r.classified {
        let how = match f.by {
            gateway_core::classify::ClassifiedBy::Sample => format!("{}/{}", f.hits, f.sampled),
            gateway_core::classify::ClassifiedBy::Pin => "pinned".into(),
            gateway_core::classify::ClassifiedBy::Previous => "earlier run".into(),
        };
        out.push_str(&format!(
            "  {:width$}  {:12}  {how}\n",
            f.field.to_string(),
            f.type_name
        ));
    }
    out
}
