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
/// references is kept; a file's trailing newline is dropped. A relative
/// PATH is read from the working directory (see [`resolve_in`]).
pub fn resolve(raw: &str) -> Result<Secret, SecretError> {
    resolve_with(raw, None)
}

/// [`resolve`], with a relative `${file:PATH}` read from `base` (the config
/// file's folder, against which the config's other paths resolve).
pub fn resolve_in(raw: &str, base: &std::path::Path) -> Result<Secret, SecretError> {
    resolve_with(raw, Some(base))
}

fn resolve_with(raw: &str, base: Option<&std::path::Path>) -> Result<Secret, SecretError> {
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
            let path = match base {
                Some(base) if std::path::Path::new(path).is_relative() => {
                    base.join(path).display().to_string()
                }
                _ => path.to_string(),
            };
            let value = std::fs::read_to_string(&path).map_err(|e| SecretError::File {
                path: path.clone(),
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
    use std::path::Path;

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

    #[test]
    fn resolve_in_reads_a_relative_file_from_the_base_folder() {
        let base = std::env::temp_dir().join(format!("tg-secret-in-{}", std::process::id()));
        std::fs::create_dir_all(base.join("keys")).unwrap();
        std::fs::write(base.join("keys/k"), "in-base\n").unwrap();
        let s = resolve_in("${file:keys/k}", &base).unwrap();
        assert_eq!(s.expose(), "in-base");
        let abs = format!("${{file:{}}}", base.join("keys/k").display());
        assert_eq!(
            resolve_in(&abs, Path::new("/nowhere")).unwrap().expose(),
            "in-base"
        );
        let err = resolve_in("${file:keys/missing}", &base).unwrap_err();
        assert!(
            err.to_string()
                .contains(&base.join("keys/missing").display().to_string())
        );
        std::fs::remove_dir_all(base).ok();
    }
}
