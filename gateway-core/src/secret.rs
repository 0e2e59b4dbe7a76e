//! Secret references in config (`${env:NAME}`, `${file:PATH}`) and a wrapper
//! that never prints its value. A resolved secret only ever leaves a
//! [`Secret`] through [`Secret::expose`].

use std::fmt;

/// A resolved secret value. `Debug` and `Display` print `[secret]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value. Call only where the secret is used (to connect, to sign).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

/// Why a secret reference could not be resolved. Never contains the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// `${env:NAME}` where NAME is unset.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// `${file:PATH}` that cannot be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// `${...}` that is neither form.
    #[error("unknown secret reference `{0}`: use ${{env:NAME}} or ${{file:PATH}}")]
    Unknown(String),
}

/// Resolve every `${env:NAME}` and `${file:PATH}` in `raw`. Text outside
/// references is kept; a file's trailing newline is dropped.
pub fn resolve(raw: &str) -> Result<Secret, SecretError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SecretError::Unknown(rest[start..].to_string()));
        };
        let reference = &after[..end];
        if let Some(name) = reference.strip_prefix("env:") {
            let value =
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_string()))?;
            out.push_str(&value);
        } else if let Some(path) = reference.strip_prefix("file:") {
            let value = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
            out.push_str(value.trim_end_matches(['\n', '\r']));
        } else {
            return Err(SecretError::Unknown(format!("${{{reference}}}")));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Secret(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_and_hides_value() {
        // SAFETY: test-only env mutation of a unique name.
        unsafe { std::env::set_var("TOLLGATE_TEST_SECRET_A", "hunter2") };
        let dir = std::env::temp_dir().join(format!("tg-secret-{}", std::process::id()));
        std::fs::write(&dir, "filepw\n").unwrap();
        let s = resolve(&format!(
            "postgres://u:${{env:TOLLGATE_TEST_SECRET_A}}@h/${{file:{}}}",
            dir.display()
        ))
        .unwrap();
        assert_eq!(s.expose(), "postgres://u:hunter2@h/filepw");
        assert_eq!(format!("{s:?} {s}"), "[secret] [secret]");
        assert_eq!(
            resolve("${env:TOLLGATE_NOPE_UNSET}"),
            Err(SecretError::MissingEnv("TOLLGATE_NOPE_UNSET".into()))
        );
        assert!(matches!(
            resolve("${vault:x}"),
            Err(SecretError::Unknown(_))
        ));
        std::fs::remove_file(dir).ok();
    }
}
