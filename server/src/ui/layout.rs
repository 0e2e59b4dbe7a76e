//! The one page shell of the console: head, stylesheet, who is logged in.

use gateway_core::Principal;
use gateway_core::approval::ApprovalState;
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The one stylesheet of every page, allowed by hash in the CSP.
pub(crate) const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f5f5f5;padding:.75rem;overflow:auto;white-space:pre-wrap}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}.who{float:right}
.state{font-weight:bold}.pending{color:#b60}.approved,.executed{color:#070}.denied,.failed,.expired,.cancelled{color:#a00}
textarea{width:100%}button{padding:.4rem 1rem;margin-right:.5rem}.msg{background:#eef;padding:.5rem}";

/// The logged-in reviewer of a page and their CSRF token (for log out).
#[derive(Clone, Copy)]
pub(crate) struct Viewer<'a> {
    pub(crate) who: &'a Principal,
    pub(crate) csrf: &'a str,
}

/// Every page: head with the stylesheet, who is logged in, the title.
pub(crate) fn layout(title: &str, viewer: Option<Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · Tollgate" }
                // A constant of this file, allowed by hash in the CSP.
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(v) = viewer {
                    form method="post" action="/ui/logout" class="who" {
                        (v.who.sub) " (" (v.who.groups.join(", ")) ") "
                        input type="hidden" name="csrf" value=(v.csrf);
                        button { "Log out" }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    }
}

pub(crate) fn state_badge(s: ApprovalState) -> Markup {
    html! { span class={ "state " (s.as_str()) } { (s.as_str()) } }
}
