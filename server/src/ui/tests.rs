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

fn approval_for(requester: &str, state: ApprovalState, group: &str) -> Approval {
    let mut a = hostile();
    a.id = format!("apr_{requester}_{}", state.as_str());
    a.requester = who(requester, &["agents"]);
    a.state = state;
    a.required[0].group = group.into();
    a.reviews.clear();
    a.tool = "sql_query".into();
    a.connection = Some("shop".into());
    a
}

/// Tabs: waiting for me (pending, mine to decide, not my own call, not yet
/// decided by me), all I may see, decided; filters are substrings.
#[test]
fn list_tabs_show_only_what_the_viewer_may_see_and_decide() {
    let rita = who("rita", &["dba"]);
    let list = vec![
        approval_for("agent", ApprovalState::Pending, "dba"),
        approval_for("rita", ApprovalState::Pending, "dba"),
        approval_for("agent2", ApprovalState::Pending, "ops"),
        approval_for("agent3", ApprovalState::Denied, "dba"),
    ];
    let ids = |tab, all, q: &ListQuery| {
        select(&list, &rita, all, tab, q)
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>()
    };
    let none = ListQuery::default();
    assert_eq!(ids(Tab::Mine, false, &none), ["apr_agent_pending"]);
    assert_eq!(
        ids(Tab::All, false, &none),
        ["apr_agent_pending", "apr_rita_pending", "apr_agent3_denied"],
        "not the ops approval: she is neither requester nor reviewer"
    );
    assert_eq!(ids(Tab::Decided, false, &none), ["apr_agent3_denied"]);
    assert_eq!(ids(Tab::All, true, &none).len(), 4, "an auditor sees all");
    let q = ListQuery {
        requester: Some("AGENT".into()),
        ..Default::default()
    };
    assert_eq!(
        ids(Tab::All, false, &q),
        ["apr_agent_pending", "apr_agent3_denied"]
    );
    let mut decided = list.clone();
    let at = decided[0].created_at;
    decided[0].reviews.push(Review {
        sub: "rita".into(),
        groups: vec!["dba".into()],
        verdict: "approve".into(),
        reason: None,
        time: at,
    });
    assert!(
        select(&decided, &rita, false, Tab::Mine, &none).is_empty(),
        "decided by her: no longer waiting for her"
    );
    // The page says why the requester has no form.
    let html = approval_page(
        Viewer {
            who: &rita,
            csrf: "c",
        },
        &list[1],
        &list[1].arguments_masked,
        &Masking::Nothing,
        None,
    )
    .into_string();
    assert!(!html.contains("Your decision"), "{html}");
    assert!(
        html.contains("you requested this call; someone else must decide it"),
        "{html}"
    );
}

fn sealed(seq: u64, prev: &str, sql: &str) -> gateway_core::audit::AuditEvent {
    let mut r = gateway_core::test_util::sample_record(seq);
    r.arguments = json!({ "sql": sql });
    gateway_core::audit::AuditEvent::seal(
        r,
        format!("ev{seq}"),
        seq,
        "2026-01-02T03:04:05.000000Z".into(),
        prev.into(),
    )
}

/// An event's chain status: verified when its hash and both links hold;
/// otherwise each break named.
#[test]
fn chain_status_names_where_the_chain_breaks() {
    use super::audit::{ChainStatus, chain_status};
    let genesis = gateway_core::audit::GENESIS_HASH;
    let e1 = sealed(1, genesis, "a");
    let e2 = sealed(2, &e1.hash, "b");
    let e3 = sealed(3, &e2.hash, "c");
    assert_eq!(
        chain_status(&e2, Some(&e1), Some(&e3), None),
        ChainStatus::Verified { next: Some(3) }
    );
    assert_eq!(
        chain_status(&e1, None, Some(&e2), None),
        ChainStatus::Verified { next: Some(2) }
    );
    let mut edited = e2.clone();
    edited.record.arguments = json!({"sql": "DROP TABLE x"});
    let ChainStatus::Broken(p) = chain_status(&edited, Some(&e1), Some(&e3), None) else {
        panic!("an edited event verified")
    };
    assert!(p[0].contains("does not match its hash"), "{p:?}");
    let ChainStatus::Broken(p) = chain_status(&e3, Some(&e1), None, None) else {
        panic!("a gap verified")
    };
    assert!(p[0].contains("events were deleted"), "{p:?}");
    let other1 = sealed(1, genesis, "replaced");
    let ChainStatus::Broken(p) = chain_status(&e2, Some(&other1), None, None) else {
        panic!("a replaced predecessor verified")
    };
    assert!(p[0].contains("prev_hash"), "{p:?}");
    let ChainStatus::Broken(p) = chain_status(&e2, Some(&e1), Some(&e3), Some("is missing".into()))
    else {
        panic!("a missing recording verified")
    };
    assert!(p[0].contains("recording is missing"), "{p:?}");
}

/// The audit pages escape every recorded value and link by encoded id.
#[test]
fn audit_pages_escape_recorded_values() {
    let rita = reviewer();
    let mut e = sealed(1, gateway_core::audit::GENESIS_HASH, XSS);
    e.id = "ev\"><script>x</script>".into();
    e.record.principal = who("<img src=x onerror=alert(1)>", &["g<b>"]);
    e.record.connection = Some("c<svg onload=alert(1)>".into());
    e.record.tool = "<i>tool".into();
    e.record.result_preview = json!({"rows": [[XSS]]});
    e.record.masked.insert("<EMAIL>".into(), 2);
    let v = Viewer {
        who: &rita,
        csrf: "c",
    };
    let status = super::audit::ChainStatus::Broken(vec![XSS.into()]);
    let q = super::audit::SearchQuery {
        q: Some("\"><script>".into()),
        ..Default::default()
    };
    for html in [
        super::audit::event_page(v, &e, &status, true).into_string(),
        super::audit::search_page(v, &q, std::slice::from_ref(&e), true, Some(XSS)).into_string(),
    ] {
        for raw in ["<script>", "<img", "<svg", "<i>tool", "g<b>", "<EMAIL>"] {
            assert!(!html.contains(raw), "{raw} reached the page raw:\n{html}");
        }
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }
    let list = super::audit::search_page(v, &q, std::slice::from_ref(&e), true, None).into_string();
    assert!(
        list.contains("href=\"/ui/audit/ev%22%3E%3Cscript%3Ex%3C%2Fscript%3E\""),
        "{list}"
    );
    assert!(list.contains("before=1"), "the next page's keyset: {list}");
}

#[test]
fn search_times_read_rfc3339_or_form_input_as_utc() {
    use super::audit::parse_when;
    let t = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    assert_eq!(parse_when("2026-11-25T10:00:00Z").unwrap(), t);
    assert_eq!(parse_when("2026-11-25T11:00:00+01:00").unwrap(), t);
    assert_eq!(parse_when("2026-11-25T10:00").unwrap(), t);
    assert_eq!(
        parse_when("2026-11-25").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
    );
    assert!(parse_when("yesterday").unwrap_err().contains("not a time"));
}

/// A Kubernetes apply whose annotations (attacker-controlled: anyone who
/// can edit the manifest writes them) carry markup: the diff, the touched
/// object names and the arguments render as text.
#[test]
fn kubernetes_annotations_in_the_diff_render_inert() {
    let mut a = hostile();
    let payload = "<img src=x onerror=\"window.__xss_k8s=1\">";
    a.tool = "k8s_apply".into();
    a.review = ReviewSummary {
        title: format!("apply deployment/{payload} in prod"),
        runs: vec![],
        resources: vec![format!("prod/deployment/{payload}")],
        diff: Some(ReviewText::code(format!(
            "   metadata:\n     annotations:\n-      note: old\n+      note: '{payload}</pre><script>y()</script>'"
        ))),
    };
    a.arguments_masked = json!({"connection": "k8s", "manifest": format!("metadata:\n  annotations:\n    note: '{payload}'")});
    let html = render(&a, &Masking::Nothing);
    for raw in ["<img", "<script", "</pre><script"] {
        assert!(!html.contains(raw), "{raw} reached the page raw:\n{html}");
    }
    assert!(
        html.contains("+      note: &#39;&lt;img src=x onerror=&quot;window.__xss_k8s=1&quot;&gt;&lt;/pre&gt;&lt;script&gt;y()&lt;/script&gt;&#39;")
            || html.contains("+      note: '&lt;img src=x onerror=&quot;window.__xss_k8s=1&quot;&gt;&lt;/pre&gt;&lt;script&gt;y()&lt;/script&gt;'"),
        "{html}"
    );
}
