//! Kubernetes name rules, checked before policy so that nothing an agent
//! passes can become a path segment, flag or header: namespaces are DNS-1123
//! labels, object names DNS-1123 subdomains.

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// Not a DNS-1123 label.
    #[error(
        "`{what}` is not a valid Kubernetes name: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
    )]
    Label {
        /// Which argument.
        what: &'static str,
    },
    /// Not a DNS-1123 subdomain.
    #[error(
        "`{what}` is not a valid Kubernetes name: at most 253 characters of lower-case letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit"
    )]
    Subdomain {
        /// Which argument.
        what: &'static str,
    },
}

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// A namespace (DNS-1123 label).
pub fn namespace(s: &str) -> Result<(), NameError> {
    if is_label(s, 63) {
        Ok(())
    } else {
        Err(NameError::Label { what: "namespace" })
    }
}

/// An object name (DNS-1123 subdomain).
pub fn object_name(s: &str) -> Result<(), NameError> {
    if !s.is_empty() && s.len() <= 253 && s.split('.').all(|p| is_label(p, 63)) {
        Ok(())
    } else {
        Err(NameError::Subdomain { what: "name" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["default", "kube-system", "a", "a1-b2"] {
            assert_eq!(namespace(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a.b",
            "a/b",
            "../x",
            "--server=x",
            "a b",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(namespace(bad).is_err(), "{bad}");
        }
        for ok in ["web", "web.v1", "kube-root-ca.crt", "a-1.b-2"] {
            assert_eq!(object_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a/b",
            "../etc",
            "--server=https://x",
            "Web",
            "a_b",
            "a%2fb",
            &"a".repeat(254),
        ] {
            assert!(object_name(bad).is_err(), "{bad}");
        }
    }
}
