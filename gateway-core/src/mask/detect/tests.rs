use super::*;

fn engine() -> Engine {
    Engine::new(&[true; 10], &[]).expect("built-ins compile")
}

fn found(s: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    engine().find(s, &mut out);
    out.iter()
        .map(|sp| (BUILTIN_TYPES[sp.ty], s[sp.start..sp.end].to_string()))
        .collect()
}

#[test]
fn finds_each_builtin_type() {
    assert_eq!(
        found("mail bob.smith+x@example.co.uk now"),
        vec![("EMAIL", "bob.smith+x@example.co.uk".into())]
    );
    assert_eq!(
        found("card 4111 1111 1111 1111."),
        vec![("CREDIT_CARD", "4111 1111 1111 1111".into())]
    );
    assert_eq!(
        found("iban GB82 WEST 1234 5698 7654 32 ok"),
        vec![("IBAN", "GB82 WEST 1234 5698 7654 32".into())]
    );
    assert_eq!(
        found("ssn 536-22-1947"),
        vec![("US_SSN", "536-22-1947".into())]
    );
    assert_eq!(
        found("from 10.0.12.7:5432"),
        vec![("IP_ADDRESS", "10.0.12.7".into())]
    );
    assert_eq!(
        found("v6 2001:db8::8a2e:370:7334 x"),
        vec![("IP_ADDRESS", "2001:db8::8a2e:370:7334".into())]
    );
    assert_eq!(
        found("call (415) 555-2671 today"),
        vec![("PHONE", "(415) 555-2671".into())]
    );
    assert_eq!(
        found("call +44 20 7946 0958"),
        vec![("PHONE", "+44 20 7946 0958".into())]
    );
    assert_eq!(
        found("key AKIAIOSFODNN7EXAMPLE"),
        vec![("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE".into())]
    );
}

#[test]
fn secrets_mask_the_value_not_the_key() {
    assert_eq!(
        found("postgres://app:s3cr3t@db.internal:5432/shop"),
        vec![("SECRET", "s3cr3t".into())]
    );
    assert_eq!(
        found(r#"{"api_key": "abc123def"}"#),
        vec![("SECRET", "abc123def".into())]
    );
    assert_eq!(
        found("user=bob password=hunter2 host=x"),
        vec![("SECRET", "hunter2".into())]
    );
    assert_eq!(
        found("Authorization: Bearer abcdef123456"),
        vec![("SECRET", "abcdef123456".into())]
    );
    assert_eq!(
        found("DB_PASSWORD='pa ss'"),
        vec![("SECRET", "pa ss".into())]
    );
    assert!(found("password: null").is_empty());
    assert!(found("max_tokens=512 monkey=3 primary key: id").is_empty());
}

#[test]
fn pem_block_is_masked_whole_even_when_truncated() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----";
    assert_eq!(
        found(&format!("key:\n{pem}\nend")),
        vec![("PRIVATE_KEY", pem.into())]
    );
    let cut = "-----BEGIN PRIVATE KEY-----\nMIIEow";
    assert_eq!(found(cut), vec![("PRIVATE_KEY", cut.into())]);
    // Escaped line breaks (a key pasted into a SQL or shell string) and
    // RFC 1421 header lines are part of the block.
    let escaped = r"-----BEGIN PRIVATE KEY-----\nMIIEow+/=\nabc\n-----END PRIVATE KEY-----";
    assert_eq!(
        found(&format!("'{escaped}'")),
        vec![("PRIVATE_KEY", escaped.into())]
    );
    let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5D7A\n\nMIIEow\n-----END RSA PRIVATE KEY-----";
    assert_eq!(found(enc), vec![("PRIVATE_KEY", enc.into())]);
}

#[test]
fn a_truncated_pem_block_stops_where_a_key_cannot_go_on() {
    // Issue #8, item 2: the block used to run to the end of the text and
    // hid `OR id > 0` from the reviewer.
    let sql = "DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY-----' OR id > 0";
    assert_eq!(
        found(sql),
        vec![("PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----".into())]
    );
    let sql = "WHERE k = '-----BEGIN PRIVATE KEY-----\nMIIEow\nab==\n' OR id > 0";
    assert_eq!(
        found(sql),
        vec![(
            "PRIVATE_KEY",
            "-----BEGIN PRIVATE KEY-----\nMIIEow\nab==".into()
        )]
    );
}

/// One sample of every built-in type, as it would sit inside a literal.
const SAMPLES: [(&str, &str); 14] = [
    ("PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----"),
    ("PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nMIIEow\nabc"),
    ("PRIVATE_KEY", "-----BEGIN EC PRIVATE KEY-----\\nMIIEow\\n"),
    ("SECRET", "password=hunter2"),
    ("SECRET", "postgres://app:s3cr3t@db.internal/shop"),
    (
        "JWT",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("CREDIT_CARD", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "4111111111111111"),
    ("IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("EMAIL", "bob@example.com"),
    ("US_SSN", "536-22-1947"),
    ("IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("PHONE", "+44 20 7946 0958"),
];

#[test]
fn no_builtin_detector_spans_past_the_literal_it_is_in() {
    for (ty, sample) in SAMPLES {
        for (open, close) in [("'", "'"), ("\"", "\""), ("$$", "$$"), ("E'", "'")] {
            let prefix = format!("DELETE FROM orders WHERE note = {open}");
            let text = format!("{prefix}{sample}{close} OR id > 0");
            let (lit_start, lit_end) = (prefix.len(), prefix.len() + sample.len());
            let mut spans = Vec::new();
            engine().find(&text, &mut spans);
            assert!(
                spans
                    .iter()
                    .any(|sp| BUILTIN_TYPES[sp.ty] == ty && sp.start >= lit_start),
                "{ty} not found in {text:?}: {spans:?}"
            );
            for sp in &spans {
                // Dollar quotes are not quotes to a detector: an unquoted
                // secret value may take the closing `$$`, never what follows.
                let end = if open == "$$" { lit_end + 2 } else { lit_end };
                assert!(
                    sp.start >= lit_start && sp.end <= end,
                    "{} spans outside the literal of {text:?}: {:?}",
                    BUILTIN_TYPES[sp.ty],
                    &text[sp.start..sp.end]
                );
            }
        }
    }
}

#[test]
fn cards_glued_to_letters_are_cards_but_hashes_are_not() {
    // Issue #8, item 6: `'k' || card_number` in an error text.
    assert_eq!(
        found(r#"invalid input syntax for type integer: "k4111111111111111""#),
        vec![("CREDIT_CARD", "4111111111111111".into())]
    );
    assert_eq!(
        found("ref_4111111111111111x card-5555555555554444"),
        vec![
            ("CREDIT_CARD", "4111111111111111".into()),
            ("CREDIT_CARD", "5555555555554444".into())
        ]
    );
    // A number glued to a letter before a card no longer hides the card.
    assert_eq!(
        found("v5 378282246310005 shipped"),
        vec![("CREDIT_CARD", "378282246310005".into())]
    );
    for s in [
        // Long hex strings with a Luhn-valid Visa-shaped digit run.
        "sha 9fceb4111111111111111a0ae598e95dc970b7",
        // Inside decimals and longer numbers.
        "0.4111111111111111",
        "12.4111111111111111",
        "74111111111111111",
        "4111111111111111.5",
        // Grouped digits touching a letter: a number and a timestamp.
        "#46644 2026-06-13T10:57:00Z",
        "x4111 1111 1111 1111",
    ] {
        assert!(found(s).is_empty(), "{s}: {:?}", found(s));
    }
}

#[test]
fn look_alikes_stay_untouched() {
    for s in [
        "order 4111111111111112 shipped",
        "version 1.2.3.4",
        "999.1.1.1",
        "1.2.3",
        "at 2024-01-15T10:22:33Z",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "sha 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "INV-415-555-2671",
        "icon@2x.png",
        "123-45-6789",
        "ts 1700000000000",
        "mac 00:1A:2B:3C:4D:5E",
    ] {
        assert!(found(s).is_empty(), "{s}: {:?}", found(s));
    }
}

#[test]
fn card_inside_longer_run_of_groups_is_found() {
    assert_eq!(
        found("ref 2024 4111 1111 1111 1111"),
        vec![("CREDIT_CARD", "4111 1111 1111 1111".into())]
    );
}

#[test]
fn overlaps_go_to_the_higher_priority_type() {
    assert_eq!(
        found("password=4111111111111111"),
        vec![("SECRET", "4111111111111111".into())]
    );
}

#[test]
fn secret_keys() {
    for k in [
        "password",
        "DB_PASSWORD",
        "api-key",
        "client_secret",
        "accessToken",
        "pwd",
        "user.pass",
        "Authorization",
    ] {
        assert!(is_secret_key(k), "{k}");
    }
    for k in [
        "tokens",
        "password_hash",
        "monkey",
        "bypass",
        "passenger",
        "key",
        "token_type",
    ] {
        assert!(!is_secret_key(k), "{k}");
    }
}

#[test]
fn odd_input_never_panics() {
    let e = engine();
    let mut out = Vec::new();
    for s in [
        "",
        "@",
        "::",
        "é@é.é 4111 1111 1111 111é",
        "\u{0}\u{ffff}𝔘𝔫𝔦𝔠𝔬𝔡𝔢 password=ü",
        "+",
        "-----BEGIN PRIVATE KEY-----",
        "GB82",
        "eyJ.eyJ.",
    ] {
        e.find(s, &mut out);
    }
    let huge = "a1@b.cc 4111-1111-1111-1111 ".repeat(10_000) + &"x".repeat(1_000_000);
    e.find(&huge, &mut out);
    assert_eq!(out.len(), 20_000);
}

#[test]
fn quoted_secret_after_keyword() {
    assert_eq!(
        found("login failed for user bob with password 'pCEw6sektNdr'"),
        vec![("SECRET", "pCEw6sektNdr".into())]
    );
    assert_eq!(
        found("the password is \"x y\""),
        vec![("SECRET", "x y".into())]
    );
}
