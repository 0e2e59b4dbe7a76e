//! The review pages as markup: escaping of attacker-controlled values, the
//! family's review shown without knowing the family, the execution facts,
//! and the stylesheet the CSP allows.

use chrono::{TimeZone, Utc};
use gateway_core::Principal;
use gateway_core::approval::record::Review;
use gateway_core::approval::{Approval, ApprovalState, Requirement};
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText, TextPart};
use serde_json::json;

use super::approvals::*;
use super::layout::*;
use super::session::*;
use super::*;
use axum::http::header;
use maud::html;

const XSS: &str = "<script>alert(1)</script>";

fn who(sub: &str, groups: &[&str]) -> Principal {
    Principal {
        sub: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// An approval whose every recorded text carries markup: the requester's
/// `sub`, the statement, a literal, a table name, a reason, a policy id.
fn hostile() -> Approval {
    let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    Approval {
        id: "apr_\"><script>x</script>".into(),
        state: ApprovalState::Pending,
        requester: who("<img src=x onerror=alert(1)>", &["agents"]),
        tool: "sql_query".into(),
        connection: Some("shop<b>".into()),
        arguments: json!({"connection": "shop", "sql": format!("DELETE FROM t WHERE a = '{XSS}'")}),
        arguments_masked: json!({"connection": "shop", "sql": format!("DELETE FROM t WHERE a = '{XSS}'")}),
        arguments_hash: "sha256:00".into(),
        review: ReviewSummary {
            title: format!("DELETE on public.{XSS}"),
            runs: vec![ReviewItem {
                label: "<i>delete</i>".into(),
                resources: vec![format!("public.{XSS}")],
                text: ReviewText {
                    parts: vec![
                        TextPart::Code(
                            "DELETE FROM \"</pre><script>y</script>\" WHERE a = ".into(),
                        ),
                        TextPart::Literal(format!("'{XSS}'")),
                    ],
                },
            }],
            resources: vec![format!("public.{XSS}")],
            diff: Some(ReviewText::code(format!("- {XSS}\n+ ok"))),
        },
        requests: vec![],
        required: vec![Requirement {
            group: "dba<u>".into(),
            count: 1,
            policies: vec!["<em>p</em>".into()],
        }],
        reviews: vec![Review {
            sub: "<b>bob</b>".into(),
            groups: vec!["dba<u>".into()],
            verdict: "approve".into(),
            reason: Some(XSS.into()),
            time: t,
        }],
        created_at: t,
        expires_at: t,
        decided_at: None,
        claimed_at: None,
        finished_at: None,
        note: None,
        items: None,
        version: 0,
    }
}

fn reviewer() -> Principal {
    who("rita\"<script>", &["dba<u>"])
}

fn render(a: &Approval, masking: &Masking) -> String {
    let rita = reviewer();
    approval_page(
        Viewer {
            who: &rita,
            csrf: "c\"sr<f",
        },
        a,
        &a.arguments_masked,
        masking,
        Some("<b>x</b>"),
    )
    .into_string()
    .replace(OWN_SCRIPT, "")
}

/// The page's own script tag (by src, from the binary), removed before
/// looking for injected ones.
const OWN_SCRIPT: &str = "<script src=\"/ui/assets/live.js\" defer></script>";

#[test]
fn attacker_controlled_values_render_escaped() {
    let a = hostile();
    let html = render(
        &a,
        &Masking::Masked {
            types: vec!["[<X>]".into()],
            connection: "shop<b>".into(),
        },
    );
    // The only tags are the page's own: no script, no injected element or
    // attribute, whatever field the markup came from.
    for raw in [
        "<script",
        "<img",
        "<b>bob",
        "<i>delete",
        "<em>p",
        "<u>",
        "shop<b>",
        "</pre><script",
        "\"><script",
        "c\"sr<f",
        "[<X>]",
    ] {
        assert!(!html.contains(raw), "{raw} reached the page raw:\n{html}");
    }
    for escaped in [
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "&lt;b&gt;bob&lt;/b&gt;",
        "&lt;i&gt;delete&lt;/i&gt;",
        "&lt;/pre&gt;&lt;script&gt;y&lt;/script&gt;",
        "rita&quot;&lt;script&gt;",
        "value=\"c&quot;sr&lt;f\"",
    ] {
        assert!(html.contains(escaped), "{escaped} missing:\n{html}");
    }
    // The id is percent-encoded in URLs and escaped in text.
    assert!(
        html.contains("action=\"/ui/approvals/apr_%22%3E%3Cscript%3Ex%3C%2Fscript%3E/decide\""),
        "{html}"
    );
    // `?done=` text is never echoed, only fixed messages by key.
    assert!(!html.contains("<b>x</b>") && !html.contains("&lt;b&gt;x"));
}

#[test]
fn the_page_shows_the_familys_review_without_knowing_the_family() {
    let mut a = hostile();
    a.review = ReviewSummary {
        title: "restart deployment web in prod".into(),
        runs: vec![ReviewItem {
            label: "exec".into(),
            resources: vec!["prod/deployment/web".into()],
            text: ReviewText {
                parts: vec![
                    TextPart::Code("kubectl rollout restart --reason=".into()),
                    TextPart::Literal("'[EMAIL]'".into()),
                ],
            },
        }],
        resources: vec!["prod/deployment/web".into(), "prod".into()],
        diff: Some(ReviewText::code("-replicas: 2\n+replicas: 3")),
    };
    a.arguments_masked = json!({"connection": "k8s", "command": "rollout restart", "replicas": 3});
    let html = render(&a, &Masking::Nothing);
    for shown in [
        "restart deployment web in prod",
        "<b>exec</b> on <code>prod/deployment/web</code>",
        "<pre>kubectl rollout restart --reason='[EMAIL]'</pre>",
        "Touches: <code>prod/deployment/web</code>, <code>prod</code>",
        "<h2>Change</h2><pre>-replicas: 2\n+replicas: 3</pre>",
        "<th><code>command</code></th><td><pre>rollout restart</pre>",
        "<th><code>replicas</code></th><td><pre>3</pre>",
    ] {
        assert!(html.contains(shown), "{shown} missing:\n{html}");
    }
    assert!(!html.contains("are masked"), "nothing masked, no note");
}

#[test]
fn an_executed_approval_shows_when_how_and_how_many() {
    let mut a = hostile();
    let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 9, 0).unwrap();
    a.state = ApprovalState::Executed;
    a.claimed_at = Some(t);
    a.finished_at = Some(t);
    a.items = Some(42);
    let html = render(&a, &Masking::Nothing);
    assert!(
        html.contains("<th>Executed at</th><td>2026-01-02T03:09:00Z</td>"),
        "{html}"
    );
    assert!(html.contains("<th>Outcome</th><td>executed</td>"), "{html}");
    assert!(
        html.contains("<th>Items</th><td>42 returned or changed</td>"),
        "{html}"
    );
    assert!(html.contains("42 items returned or changed"), "{html}");
    assert!(!html.contains("Your decision"), "no form after execution");
    a.state = ApprovalState::Failed;
    a.items = None;
    a.note = Some("the approved call failed at execution".into());
    let html = render(&a, &Masking::Nothing);
    assert!(
        html.contains("<th>Outcome</th><td>failed (the approved call failed at execution)</td>"),
        "{html}"
    );
    assert!(html.contains("<th>Items</th><td>-</td>"), "{html}");
    // Not run yet: no execution rows.
    let html = render(&hostile(), &Masking::Nothing);
    assert!(!html.contains("Executed at"), "{html}");
}

#[test]
fn masking_notes_say_what_is_masked_or_why_it_is_not() {
    let note = |m| masking_note(&m).into_string();
    let masked = note(Masking::Masked {
        types: vec!["[PRIVATE_KEY]".into()],
        connection: "shop".into(),
    });
    assert!(masked.contains("[PRIVATE_KEY] are masked"), "{masked}");
    assert!(
        masked.contains("permitting you <code>unmask</code> on <code>shop</code>"),
        "{masked}"
    );
    let raw = note(Masking::Unmasked {
        types: vec!["[EMAIL]".into()],
        connection: "shop".into(),
    });
    assert!(raw.contains("Shown unmasked"), "{raw}");
    assert_eq!(note(Masking::Nothing), "");
}

#[test]
fn the_list_escapes_and_links_by_encoded_id() {
    let rita = reviewer();
    let a = hostile();
    let html = list_page(
        Viewer {
            who: &rita,
            csrf: "c",
        },
        std::slice::from_ref(&a),
        false,
        &ListQuery::default(),
    )
    .into_string()
    .replace(OWN_SCRIPT, "");
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/ui/approvals/apr_%22%3E%3Cscript%3Ex%3C%2Fscript%3E\""),
        "{html}"
    );
    assert!(html.contains("DELETE on public.&lt;script&gt;"), "{html}");
    let empty = list_page(
        Viewer {
            who: &rita,
            csrf: "c",
        },
        &[],
        true,
        &ListQuery::default(),
    )
    .into_string();
    assert!(empty.contains("Nothing is waiting for you."));
}

#[test]
fn redirects_encode_their_parts_and_stay_under_ui() {
    let r = login_redirect("/ui/approvals/a b?x=1&y=<z>");
    assert_eq!(
        r.headers()[header::LOCATION],
        "/ui/login?next=%2Fui%2Fapprovals%2Fa%20b%3Fx%3D1%26y%3D%3Cz%3E"
    );
    assert_eq!(safe_next(Some("//evil.example")), "/ui");
    assert_eq!(safe_next(Some("https://evil.example/ui")), "/ui");
    assert_eq!(safe_next(Some("/ui/approvals/x")), "/ui/approvals/x");
}

#[test]
fn the_session_cookie_is_http_only_lax_and_scoped() {
    let c = session_cookie("tok".into(), true).to_string();
    for part in [
        "tollgate_session=tok",
        "HttpOnly",
        "SameSite=Lax",
        "Path=/ui",
        "Secure",
    ] {
        assert!(c.contains(part), "{c}");
    }
    assert!(
        !session_cookie("tok".into(), false)
            .to_string()
            .contains("Secure")
    );
}

/// The CSP lets nothing inline run: scripts and styles only from this
/// origin (the embedded assets), no framing; and no page carries an inline
/// script, style element or style attribute.
#[test]
fn csp_allows_only_own_assets_and_pages_carry_nothing_inline() {
    let csp = csp().to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(part), "{part}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let rita = reviewer();
    let pages = [
        layout("t", None, html! { p { "x" } }).into_string(),
        render(&hostile(), &Masking::Nothing),
        list_page(
            Viewer {
                who: &rita,
                csrf: "c",
            },
            &[hostile()],
            true,
            &ListQuery::default(),
        )
        .into_string(),
    ];
    for html in &pages {
        assert!(!html.contains("<style"), "no inline style element");
        assert!(!html.contains(" style="), "no style attribute");
        // Scripts only by src, from /ui/assets/.
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            assert!(tag.contains("src=\"/ui/assets/"), "{tag}");
            assert!(
                html[i..].starts_with(&format!("{tag}></script>")),
                "empty script element"
            );
        }
    }
    assert_eq!(done_message("<b>x</b>"), None);
}
