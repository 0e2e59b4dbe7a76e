//! Masking stage: sensitive data never leaves the gateway unless policy says
//! so. Works on JSON values (SQL rows, Kubernetes objects) and on text (SSH
//! output, error messages). (Stub API; the detectors land with the masking issue.)

use std::collections::BTreeMap;

use serde_json::Value;

use crate::connector::FieldOrigin;

/// Count of masked values per type, e.g. `{EMAIL: 3}`.
pub type MaskCounts = BTreeMap<String, u64>;

/// Masking configuration (the `[masking]` section).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct MaskConfig {}

/// Error in the masking configuration.
#[derive(Debug, thiserror::Error)]
#[error("masking config: {0}")]
pub struct MaskConfigError(pub String);

/// Compiled masker, shared by all calls.
#[derive(Debug, Default)]
pub struct Masker {}

impl Masker {
    /// Compile a masker from config.
    pub fn new(_config: &MaskConfig) -> Result<Self, MaskConfigError> {
        Ok(Masker {})
    }

    /// Mask a structured result in place; `origins` names where fields came
    /// from (for column rules of `connection`). Returns counts per type.
    pub fn mask_value(
        &self,
        _connection: &str,
        _value: &mut Value,
        _origins: &[FieldOrigin],
    ) -> MaskCounts {
        MaskCounts::new()
    }

    /// Mask free text (error messages, command output).
    pub fn mask_text(&self, text: &str) -> (String, MaskCounts) {
        (text.to_string(), MaskCounts::new())
    }
}
