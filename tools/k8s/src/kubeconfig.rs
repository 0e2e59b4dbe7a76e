//! A connection's `kubeconfig = "PATH"` (+ `context = "NAME"`, default the
//! file's `current-context`): read with kube's own kubeconfig loader, then
//! reduced to what a gateway may use — the cluster's server, CA and
//! `tls-server-name`, and the user's token, `tokenFile` or client
//! certificate and key (inline `-data` or files).
//!
//! Refused, each with its reason: credential plugins (`exec`) and
//! `auth-provider` (a gateway never runs a program a config file names),
//! basic auth, impersonation fields (`as`, `as-groups`, ...: use the
//! connection's `impersonate`), `insecure-skip-tls-verify`, `proxy-url`, and
//! a user with both a token and a client certificate. A `tokenFile` is read
//! once, at start, like `token = "${file:...}"`. No error quotes the file's
//! contents: parse errors are reported without the parser's text, which may
//! hold a snippet of the file.

use gateway_core::secret::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError, LoadDataError};

use crate::config::{self, Auth, Target};

/// The server, CA and credentials of `context` (None: the current
/// context) in the kubeconfig at `path`.
pub(crate) fn read(path: &str, context: Option<&str>, impersonate: bool) -> Result<Target, String> {
    let at = |m: String| format!("`kubeconfig` {path}: {m}");
    let file = Kubeconfig::read_from(path).map_err(|e| at(load_error(&e)))?;
    let name = context
        .map(str::to_string)
        .or_else(|| file.current_context.clone())
        .ok_or_else(|| at("no `current-context`: set `context`".into()))?;
    let named = file
        .contexts
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| at(format!("no context `{name}`")))?;
    let user = named.user.clone().unwrap_or_default();
    if let Some(cluster) = file
        .clusters
        .iter()
        .find(|c| c.name == named.cluster)
        .and_then(|c| c.cluster.as_ref())
        && cluster.proxy_url.as_deref().is_some_and(|p| !p.is_empty())
    {
        return Err(at(format!(
            "cluster `{}` sets `proxy-url`, which this build does not support",
            named.cluster
        )));
    }
    let options = KubeConfigOptions {
        context: Some(name.clone()),
        ..Default::default()
    };
    // Loading is synchronous work behind an async signature (no I/O is
    // awaited), so blocking on it here is sound at config time.
    let cfg = futures::executor::block_on(kube::Config::from_custom_kubeconfig(file, &options))
        .map_err(|e| at(load_error(&e)))?;
    let of = format!("user `{user}` of context `{name}`");
    let a = &cfg.auth_info;
    if a.exec.is_some() {
        return Err(at(format!(
            "{of} runs a credential plugin (`exec`): a gateway does not run programs named in a \
             config file; give the user a token, tokenFile or client certificate instead"
        )));
    }
    if let Some(p) = &a.auth_provider {
        return Err(at(format!(
            "{of} uses auth-provider `{}`: not supported (it can run programs and refresh \
             credentials on its own); give the user a token, tokenFile or client certificate",
            p.name
        )));
    }
    if a.username.is_some() || a.password.is_some() {
        return Err(at(format!(
            "{of} uses basic auth (`username`/`password`), which Kubernetes no longer serves"
        )));
    }
    if a.impersonate.is_some()
        || a.impersonate_uid.is_some()
        || a.impersonate_groups.is_some()
        || a.impersonate_user_extra.is_some()
    {
        let hint = if impersonate {
            "it would clash with the connection's `impersonate = true`"
        } else {
            "set `impersonate = true` on the connection to act as each caller"
        };
        return Err(at(format!(
            "{of} impersonates (`as`, `as-groups`, ...): not supported; {hint}"
        )));
    }
    if cfg.accept_invalid_certs {
        return Err(at(format!(
            "context `{name}` sets `insecure-skip-tls-verify`: a gateway always verifies the server"
        )));
    }
    let server =
        config::check_server(&cfg.cluster_url.to_string(), "the cluster's `server`").map_err(at)?;
    if cfg.root_cert.as_ref().is_some_and(Vec::is_empty) {
        return Err(at(format!(
            "the CA of context `{name}` holds no PEM certificate"
        )));
    }
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => {
            use secrecy::ExposeSecret as _;
            Some(Secret::new(t.expose_secret()))
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| at(format!("{of}: `tokenFile` {file}: {e}")))?;
            Some(Secret::new(text.trim_end_matches(['\n', '\r'])))
        }
        (None, None) => None,
    };
    let has_cert = a.client_certificate.is_some() || a.client_certificate_data.is_some();
    let has_key = a.client_key.is_some() || a.client_key_data.is_some();
    let (token, auth) = match (token, has_cert || has_key) {
        (Some(_), true) => {
            return Err(at(format!(
                "{of} sets both a token and a client certificate: keep one"
            )));
        }
        (Some(t), false) => (
            config::check_token(t, &format!("the token of {of}")).map_err(at)?,
            Auth::Token,
        ),
        (None, true) => {
            let cert = load(
                &a.client_certificate_data,
                &a.client_certificate,
                "client-certificate",
            )
            .map_err(|e| at(format!("{of}: {e}")))?;
            let key = {
                use secrecy::ExposeSecret as _;
                let data = a
                    .client_key_data
                    .as_ref()
                    .map(|k| k.expose_secret().to_string());
                load(&data, &a.client_key, "client-key").map_err(|e| at(format!("{of}: {e}")))?
            };
            let cert = String::from_utf8(cert)
                .map_err(|_| at(format!("{of}: the client certificate is not PEM text")))?;
            let key = String::from_utf8(key)
                .map_err(|_| at(format!("{of}: the client key is not PEM text")))?;
            (
                Secret::new(""),
                config::client_cert(cert, Secret::new(key), &of).map_err(at)?,
            )
        }
        (None, false) => {
            return Err(at(format!(
                "{of} has no credentials: give it a token, tokenFile or client certificate and key"
            )));
        }
    };
    Ok(Target {
        server,
        ca: cfg.root_cert.clone(),
        tls_server_name: cfg.tls_server_name.clone(),
        token,
        auth,
    })
}

/// One PEM of the user: base64 `-data` inline, or a file (never quoted).
fn load(data: &Option<String>, file: &Option<String>, what: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    match (data, file) {
        (Some(d), _) => base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|_| format!("`{what}-data` is not base64")),
        (None, Some(f)) => std::fs::read(f).map_err(|e| format!("`{what}` {f}: {e}")),
        (None, None) => Err(format!("`{what}` is missing")),
    }
}

/// A loader error in words that never carry the file's contents.
fn load_error(e: &KubeconfigError) -> String {
    let data = |d: &LoadDataError| match d {
        LoadDataError::DecodeBase64(_) => "its `-data` is not base64".to_string(),
        LoadDataError::ReadFile(io, path) => format!("cannot read {}: {io}", path.display()),
        LoadDataError::NoBase64DataOrFile => "neither `-data` nor a file is given".to_string(),
    };
    match e {
        KubeconfigError::ReadConfig(io, _) => format!("cannot read the file: {io}"),
        // The parser's message may quote a line of the file (a token).
        KubeconfigError::Parse(_) => "not a valid kubeconfig (YAML)".into(),
        KubeconfigError::CurrentContextNotSet => "no `current-context`: set `context`".into(),
        KubeconfigError::LoadContext(c) => format!("no context `{c}`"),
        KubeconfigError::LoadClusterOfContext(c) => format!("no cluster `{c}`"),
        KubeconfigError::MissingClusterUrl => "the cluster has no `server`".into(),
        KubeconfigError::ParseClusterUrl(_) => "the cluster's `server` is not a URL".into(),
        KubeconfigError::ParseProxyUrl(_) => "the proxy URL is not a URL".into(),
        KubeconfigError::LoadCertificateAuthority(d) => {
            format!("the cluster's certificate-authority: {}", data(d))
        }
        KubeconfigError::LoadClientCertificate(d) => {
            format!("the client certificate: {}", data(d))
        }
        KubeconfigError::LoadClientKey(d) => format!("the client key: {}", data(d)),
        KubeconfigError::ParseCertificates(_) => {
            "the cluster's certificate-authority is not PEM".into()
        }
        KubeconfigError::KindMismatch | KubeconfigError::ApiVersionMismatch => {
            "its documents disagree on `kind` or `apiVersion`".into()
        }
        _ => "cannot be loaded".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::config::{Auth, K8sConfig};

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    const TOKEN: &str = "kc-token-1234567890";

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A kubeconfig with contexts `tok` (current), `cert` and `extra`
    /// (whose user is `user_yaml`), written to a fresh file.
    fn file(user_yaml: &str, cluster_extra: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-kc-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
        let text = format!(
            r#"apiVersion: v1
kind: Config
current-context: tok
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: {ca}
    tls-server-name: kube.local
{cluster_extra}
contexts:
- name: tok
  context: {{cluster: c, user: tok}}
- name: cert
  context: {{cluster: c, user: cert}}
- name: extra
  context: {{cluster: c, user: extra}}
users:
- name: tok
  user:
    token: {TOKEN}
- name: cert
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
- name: extra
  user:
{user_yaml}
"#,
            ca = b64(CA),
            cert = b64(CA),
            key = b64(KEY),
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn parse(path: &std::path::Path, extra: Value) -> Result<K8sConfig, String> {
        let mut t = json!({"kubeconfig": path.to_str().unwrap()});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        K8sConfig::parse("kc", &t)
    }

    #[test]
    fn contexts_select_server_ca_and_credentials() {
        let path = file("    tokenFile: token", "");
        let tok = parse(&path, json!({})).unwrap();
        assert_eq!(tok.server.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(tok.ca.as_ref().map(Vec::len), Some(1));
        assert_eq!(tok.tls_server_name.as_deref(), Some("kube.local"));
        assert_eq!(tok.token.expose(), TOKEN);
        assert!(matches!(tok.auth, Auth::Token));
        let cert = parse(&path, json!({"context": "cert"})).unwrap();
        assert!(matches!(cert.auth, Auth::ClientCert { .. }));
        assert_eq!(cert.token.expose(), "");
        // A relative tokenFile is read beside the kubeconfig.
        let file_token = parse(&path, json!({"context": "extra", "impersonate": true})).unwrap();
        assert_eq!(file_token.token.expose(), TOKEN);
        assert!(file_token.impersonate);
        let e = parse(&path, json!({"context": "nope"})).unwrap_err();
        assert!(e.contains("no context `nope`"), "{e}");
        let e = parse(&path, json!({"server": "https://x"})).unwrap_err();
        assert!(e.contains("comes from the kubeconfig"), "{e}");
        let e = parse(&path, json!({"token": "t"})).unwrap_err();
        assert!(e.contains("one way"), "{e}");
    }

    #[test]
    fn what_a_gateway_must_not_use_is_refused_without_quoting_credentials() {
        for (user, cluster, needle) in [
            (
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/touch\n      args: [/tmp/pwned]",
                "",
                "credential plugin (`exec`)",
            ),
            (
                "    auth-provider:\n      name: gcp\n      config: {cmd-path: /bin/touch}",
                "",
                "auth-provider `gcp`",
            ),
            (
                "    username: u\n    password: p4ssw0rd-value",
                "",
                "basic auth",
            ),
            (
                &format!("    token: {TOKEN}\n    as: root"),
                "",
                "impersonates",
            ),
            (
                &format!(
                    "    token: {TOKEN}\n    client-certificate-data: {}\n    client-key-data: {}",
                    b64(CA),
                    b64(KEY)
                ),
                "",
                "both a token and a client certificate",
            ),
            ("    {}", "", "has no credentials"),
            (
                &format!("    token: {TOKEN}"),
                "    insecure-skip-tls-verify: true",
                "insecure-skip-tls-verify",
            ),
            (
                &format!("    token: {TOKEN}"),
                "    proxy-url: http://proxy:3128",
                "proxy-url",
            ),
            (&format!("    token: {TOKEN} with space"), "", "whitespace"),
            (
                &format!(
                    "    client-certificate-data: {}\n    client-key-data: {}",
                    b64(CA),
                    b64(&format!("{TOKEN} not a key"))
                ),
                "",
                "not a PEM private key",
            ),
        ] {
            let path = file(user, cluster);
            let e = parse(&path, json!({"context": "extra"})).unwrap_err();
            assert!(e.contains(needle), "{needle}: {e}");
            for secret in [TOKEN, "p4ssw0rd-value", "MIIB"] {
                assert!(!e.contains(secret), "{e}");
            }
        }
        // A malformed file: the parser's text (which may quote the token)
        // is not passed on.
        let path = file(&format!("    token: [{TOKEN}"), "");
        let e = parse(&path, json!({})).unwrap_err();
        assert!(
            e.contains("not a valid kubeconfig") && !e.contains(TOKEN),
            "{e}"
        );
        // An exec user the chosen context does not use is never looked at.
        let path = file("    exec:\n      command: /bin/true", "");
        assert!(parse(&path, json!({"context": "tok"})).is_ok());
    }
}
