//! Config parsing and validation tests.

use super::*;

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    Config::parse(Path::new("/etc/tollgate/t.toml"), text)
}

#[test]
fn contract_example_parses() {
    let c = parse(
        r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
data_dir = "tollgate-data"

[auth]
issuer = "https://idp.example.com"
audience = "tollgate"
groups_claim = "groups"
hs256_secret = "${env:TOLLGATE_HS256_SECRET}"

[policy]
dir = "policies"
mode = "enforce"

[approval]
wait_seconds = 50
ttl = "1h"

[stdio]
sub = "local-agent"
groups = ["agents"]

[[connection]]
name = "shop"
kind = "postgres"
url = "${env:SHOP_DATABASE_URL}"
description = "orders and customers"
statement_timeout = "10s"
max_rows = 1000
"#,
    )
    .unwrap();
    assert_eq!(c.connections.len(), 1);
    assert_eq!(c.approval_ttl(), Duration::from_secs(3600));
    assert_eq!(
        c.resolve_path(&c.policy.dir),
        PathBuf::from("/etc/tollgate/policies")
    );
}

#[test]
fn unknown_key_is_rejected_with_position() {
    let errs = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
    assert_eq!((errs[0].line, errs[0].col), (3, 1), "{}", errs[0]);
    assert!(
        errs[0]
            .to_string()
            .starts_with("/etc/tollgate/t.toml:3:1: unknown field `listen_port`"),
        "{}",
        errs[0]
    );
}

#[test]
fn bad_values_are_rejected_with_position() {
    let errs = parse("[server]\nlisten = \"nope\"\n[approval]\nttl = \"soon\"\n").unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].line, 2);
    assert_eq!(errs[1].line, 4);
    let errs = parse("[policy]\nmode = \"maybe\"\n").unwrap_err();
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
}

#[test]
fn metrics_access_defaults_to_open_and_takes_three_words() {
    assert_eq!(parse("").unwrap().server.metrics, MetricsAccess::Open);
    for (word, access) in [
        ("open", MetricsAccess::Open),
        ("token", MetricsAccess::Token),
        ("off", MetricsAccess::Off),
    ] {
        let c = parse(&format!("[server]\nmetrics = \"{word}\"\n")).unwrap();
        assert_eq!(c.server.metrics, access);
    }
    let errs = parse("[server]\nlisten = \"127.0.0.1:1\"\nmetrics = true\n").unwrap_err();
    assert_eq!(errs[0].line, 3, "{}", errs[0]);
    let errs = parse("[server]\nmetrics = \"public\"\n").unwrap_err();
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
    assert!(errs[0].message.contains("`open`, `token`"), "{}", errs[0]);
}

#[test]
fn duplicate_connection_names_are_rejected() {
    let errs = parse("[[connection]]\nname = \"a\"\nkind = \"sqlite\"\n[[connection]]\nname = \"a\"\nkind = \"sqlite\"\n").unwrap_err();
    assert_eq!(errs[0].line, 4, "{}", errs[0]);
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let c = parse("[[connection]]\nname = \"d\"\nkind = \"sqlite\"\npath = \"demo.db\"\n").unwrap();
    let j = c.connection_json(c.connections[0].get_ref());
    assert_eq!(j["path"], "/etc/tollgate/demo.db");
    let c = parse(
        "[[connection]]\nname = \"w\"\nkind = \"ssh\"\nprivate_key = \"${file:keys/k}\"\n\
         known_hosts = \"kh\"\nurl = \"x${file:/abs/u}y${file:rel/u}${env:E}\"\n\
         client_key = \"-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\\n\"\n",
    )
    .unwrap();
    let j = c.connection_json(c.connections[0].get_ref());
    assert_eq!(j["private_key"], "${file:/etc/tollgate/keys/k}");
    assert_eq!(j["known_hosts"], "/etc/tollgate/kh");
    assert_eq!(
        j["url"],
        "x${file:/abs/u}y${file:/etc/tollgate/rel/u}${env:E}"
    );
    assert!(j["client_key"].as_str().unwrap().starts_with("-----BEGIN"));
}

#[test]
fn listen_takes_a_host_name_and_literal_secrets_warn() {
    let config =
        parse("[server]\nlisten = \"localhost:8080\"\n[auth]\nhs256_secret = \"plaintext\"\n")
            .expect("localhost:8080 is a listen address");
    let warnings: Vec<String> = config.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(":4:1: warning: auth.hs256_secret is written in the file")
            && warnings[0].contains("${env:NAME}")
            && !warnings[0].contains("plaintext"),
        "{warnings:?}"
    );
    let config = parse("[auth]\nhs256_secret = \"${env:TOLLGATE_SECRET}\"\n").unwrap();
    assert!(config.warnings().is_empty());
}

#[test]
fn approval_ttl_takes_the_one_duration_grammar() {
    let c = parse("[approval]\nttl = \"1m30s\"\n[auth]\nleeway = \"1m30s\"\n").unwrap();
    assert_eq!(c.approval_ttl(), Duration::from_secs(90));
    let errs = parse("[approval]\nwait_seconds = 5\nttl = \"10 parsecs\"\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    let text = errs[0].to_string();
    assert!(
        text.starts_with("/etc/tollgate/t.toml:3:7: approval.ttl: `10 parsecs` is not a duration"),
        "{text}"
    );
    assert!(text.contains("parsecs"), "{text}");
    let errs = parse("[auth]\nleeway = \"10 parsecs\"\n").unwrap_err();
    assert_eq!((errs[0].line, errs[0].col), (2, 10), "{}", errs[0]);
}

#[test]
fn masking_classification_section_parses_and_refuses_typos() {
    let c = parse(
        r#"
[masking.classification]
enabled = true
sample_rows = 200
threshold = 0.6
min_hits = 2
interval = "30m"
timeout = "20s"
exempt = ["shop.public.customers.notes", { connection = "*", column = "*.*.memo" }]
pin = [{ connection = "shop", column = "public.customers.tax_id", type = "TAX_ID" }]
"#,
    )
    .unwrap();
    let k = &c.masking.classification;
    assert_eq!((k.sample_rows, k.threshold, k.min_hits), (200, 0.6, 2));
    assert_eq!(k.interval.0, Duration::from_secs(1800));
    assert_eq!(k.exempt.len(), 2);
    assert_eq!(k.pin[0].type_name, "TAX_ID");
    // Defaults without the section.
    let d = parse("").unwrap();
    assert!(d.masking.classification.enabled);
    assert_eq!(d.masking.classification.sample_rows, 100);
    assert_eq!(d.masking.classification.threshold, 0.5);
    // A typo is an error at its line.
    let e = parse("\n[masking.classification]\nsample_row = 5\n").unwrap_err();
    assert_eq!(e[0].line, 3, "{e:?}");
    assert!(e[0].message.contains("sample_row"), "{e:?}");
    let e = parse("[masking.classification]\ninterval = \"soon\"\n").unwrap_err();
    assert!(e[0].message.contains("duration"), "{e:?}");
    let e =
        parse("[masking.classification]\npin = [{ column = \"a.b.c\", type = \"X\", typo = 1 }]\n")
            .unwrap_err();
    assert!(e[0].message.contains("typo"), "{e:?}");
    let e = parse("[masking.classification]\nexempt = [{ column = \"a.b.c\", colum = \"x\" }]\n")
        .unwrap_err();
    assert!(e[0].message.contains("colum"), "{e:?}");
    let e = parse("[masking.classification]\nexempt = [5]\n").unwrap_err();
    assert!(e[0].message.contains("connection.field"), "{e:?}");
}

#[test]
fn audit_section_of_the_contract_parses_and_is_checked() {
    let c = parse(
        r#"
[audit]
checkpoint_key = "${file:keys/audit.pem}"
checkpoint_dir = "checkpoints"
checkpoint_interval = "1m"
"#,
    )
    .unwrap();
    assert_eq!(c.checkpoint_interval(), Duration::from_secs(60));
    assert_eq!(
        c.resolve_path(c.audit.checkpoint_dir.as_ref().unwrap()),
        Path::new("/etc/tollgate/checkpoints")
    );
    assert_eq!(c.folder(), Path::new("/etc/tollgate"));
    // Default interval.
    let c = parse("[audit]\ncheckpoint_key = \"k\"\ncheckpoint_dir = \"c\"\n").unwrap();
    assert_eq!(c.checkpoint_interval(), DEFAULT_CHECKPOINT_INTERVAL);
    // Errors at their line: a typo, a bad or zero interval, no key.
    let e = parse("[audit]\ncheckpoint_key = \"k\"\ncheckpoint_dirs = \"c\"\n").unwrap_err();
    assert_eq!(e[0].line, 3, "{e:?}");
    assert!(e[0].message.contains("checkpoint_dirs"), "{e:?}");
    for bad in ["\"soon\"", "\"0s\""] {
        let e = parse(&format!(
            "[audit]\ncheckpoint_key = \"k\"\ncheckpoint_dir = \"c\"\ncheckpoint_interval = {bad}\n"
        ))
        .unwrap_err();
        assert_eq!(e[0].line, 4, "{bad}: {e:?}");
        assert!(e[0].message.contains("checkpoint_interval"), "{e:?}");
    }
    let e = parse("[audit]\ncheckpoint_dir = \"c\"\n").unwrap_err();
    assert!(e[0].message.contains("need audit.checkpoint_key"), "{e:?}");
    assert!(e[0].message.contains("openssl genpkey"), "{e:?}");
}

#[test]
fn abuse_limits_parse_with_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.server.header_timeout.0, Duration::from_secs(10));
    assert_eq!(c.server.body_timeout.0, Duration::from_secs(30));
    assert_eq!(c.server.max_connections, 4096);
    assert_eq!(c.server.max_argument_bytes, 1 << 20);
    let c = parse(
        r#"
[server]
header_timeout = "2s"
max_connections = 10
max_argument_bytes = 2048

[[limits.rule]]
group = "agents"
tool = "sql_query"
rate = "100/min"
burst = 5

[[limits.rule]]
principal = "*"
concurrency = 2
"#,
    )
    .unwrap();
    assert_eq!(c.server.header_timeout.0, Duration::from_secs(2));
    let rules: Vec<LimitRule> = c
        .limits
        .rule
        .iter()
        .map(|r| r.get_ref().to_rule().unwrap())
        .collect();
    assert_eq!(rules[0].who, Who::Group("agents".into()));
    assert_eq!(rules[0].tool.as_deref(), Some("sql_query"));
    let rate = rules[0].rate.unwrap();
    assert_eq!(
        (rate.calls.get(), rate.period, rate.burst.get()),
        (100, Duration::from_secs(60), 5)
    );
    assert_eq!(rules[1].who, Who::Everyone);
    assert_eq!(rules[1].tool, None);
    assert_eq!(rules[1].concurrency.map(|c| c.get()), Some(2));
    assert_eq!(c.call_limits().max_argument_bytes(), Some(2048));
}

#[test]
fn bad_limit_rules_are_reported_at_the_rule() {
    for (rule, says) in [
        ("rate = \"100/fortnight\"", "is not a rate like 100/min"),
        ("rate = \"0/s\"", "is not a rate"),
        (
            "principal = \"a\"\ngroup = \"b\"\nrate = \"1/s\"",
            "not both",
        ),
        ("tool = \"sql_query\"", "needs a rate"),
        ("concurrency = 0", "at least 1"),
        ("burst = 3\nconcurrency = 1", "burst needs a rate"),
        ("principal = \"\"\nrate = \"1/s\"", "must not be empty"),
    ] {
        let text = format!("[server]\nlisten = \"127.0.0.1:1\"\n\n[[limits.rule]]\n{rule}\n");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.len(), 1, "{rule}: {errs:?}");
        assert!(errs[0].message.contains(says), "{rule}: {}", errs[0]);
        assert_eq!(errs[0].line, 4, "{rule}: at the rule: {}", errs[0]);
    }
    let errs = parse("[server]\nheader_timeout = \"soon\"\n").unwrap_err();
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
    let errs = parse("[server]\nmax_connections = 0\n").unwrap_err();
    assert!(errs[0].message.contains("at least 1"), "{}", errs[0]);
}

#[test]
fn ui_section_of_the_contract_parses_and_is_checked() {
    let c = parse(
        r#"
[ui]
oidc_issuer = "https://idp.example.com"   # discovery at <issuer>/.well-known/openid-configuration
client_id = "tollgate-ui"
client_secret = "${env:TOLLGATE_UI_SECRET}"
"#,
    )
    .unwrap();
    assert_eq!(c.ui.session_ttl.0, DEFAULT_SESSION_TTL);
    assert_eq!(c.ui.client_id.as_deref(), Some("tollgate-ui"));
    let c = parse("[ui]\nsession_ttl = \"30m\"\nscopes = [\"profile\"]\n").unwrap();
    assert_eq!(c.ui.session_ttl.0, Duration::from_secs(1800));
    assert!(c.ui.oidc_issuer.is_none());
    // A literal secret in a bad value is never echoed.
    for (text, want) in [
        (
            "[ui]\noidc_issuer = \"https://idp.example.com\"\n",
            "needs ui.client_id",
        ),
        (
            "[ui]\nclient_id = \"x\"\n",
            "ui.client_id needs ui.oidc_issuer",
        ),
        (
            "[ui]\nclient_secret = \"hunter2\"\n",
            "ui.client_secret needs ui.oidc_issuer",
        ),
        (
            "[ui]\noidc_issuer = \"http://idp.example.com\"\nclient_id = \"x\"\n",
            "must be https",
        ),
        (
            "[ui]\noidc_issuer = \"https://idp.example.com/?a=b\"\nclient_id = \"x\"\n",
            "no query",
        ),
        ("[ui]\nsession_ttl = \"0s\"\n", "longer than 0s"),
        ("[ui]\nsession_ttl = \"hunter2\"\n", "is not a duration"),
        ("[ui]\nscopes = [\"a b\"]\n", "single words"),
        (
            "[ui]\nclient_secrett = \"hunter2\"\n",
            "unknown field `client_secrett`",
        ),
    ] {
        let errs = parse(text).unwrap_err();
        let all = errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains(want), "{text}: {all}");
        assert!(
            !all.contains("hunter2") || text.contains("session_ttl"),
            "{all}"
        );
    }
    // http only on a loopback host.
    for ok in [
        "http://127.0.0.1:9000",
        "http://localhost:1",
        "http://[::1]:2",
        "https://idp.example.com/realms/x",
    ] {
        assert_eq!(oidc_issuer_ok(ok), Ok(()), "{ok}");
    }
}
