//! The one page shell of the console: head (the embedded stylesheet and
//! scripts, never inline), the top bar (navigation, who is logged in, log
//! out) and the main column. Every value goes through maud, which escapes it.

use gateway_core::Principal;
use gateway_core::approval::ApprovalState;
use maud::{DOCTYPE, Markup, html};

/// The logged-in person of a page and their CSRF token (for log out).
#[derive(Clone, Copy)]
pub(crate) struct Viewer<'a> {
    pub(crate) who: &'a Principal,
    pub(crate) csrf: &'a str,
}

/// Which part of the console a page belongs to (highlighted in the nav).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Section {
    /// No section (login, errors).
    None,
    /// `/ui/approvals`.
    Approvals,
    /// `/ui/audit`.
    Audit,
}

/// A page without a section (login, errors).
pub(crate) fn layout(title: &str, viewer: Option<Viewer<'_>>, body: Markup) -> Markup {
    page(title, Section::None, viewer, &[], body)
}

/// A page of `section`, loading the embedded `scripts` (names under
/// `/ui/assets/`).
pub(crate) fn page(
    title: &str,
    section: Section,
    viewer: Option<Viewer<'_>>,
    scripts: &[&str],
    body: Markup,
) -> Markup {
    let current = |s: Section| if s == section { Some("page") } else { None };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tollgate" }
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href={ "/ui/assets/" (super::assets::CSS) };
                @for s in scripts {
                    script src={ "/ui/assets/" (s) } defer {}
                }
            }
            body {
                header.top {
                    a.brand href="/ui/approvals" { "Tollgate" }
                    @if viewer.is_some() {
                        nav aria-label="Console" {
                            a href="/ui/approvals" aria-current=[current(Section::Approvals)] { "Approvals" }
                            a href="/ui/audit" aria-current=[current(Section::Audit)] { "Audit" }
                        }
                    }
                    @if let Some(v) = viewer {
                        div.who {
                            span { "Signed in as " b { (v.who.sub) } }
                            @if !v.who.groups.is_empty() {
                                span.muted { "(" (v.who.groups.join(", ")) ")" }
                            }
                            form method="post" action="/ui/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button { "Log out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An approval's state as a coloured badge.
pub(crate) fn state_badge(s: ApprovalState) -> Markup {
    badge(s.as_str())
}

/// A short word as a badge; its class is the word (only known classes have a colour).
pub(crate) fn badge(word: &str) -> Markup {
    html! { span class={ "badge " (word) } { (word) } }
}
