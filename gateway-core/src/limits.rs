//! Abuse limits on tool calls, checked before anything else the pipeline
//! does (no analysis, no policy, nothing executes): the size of a call's
//! arguments, and per-principal rate and concurrency limits by rule.
//!
//! A rule names who (a `sub`, a group, or everyone) and which tool (one, or
//! every tool) and caps the calls **of each principal** it matches: `rate`
//! calls per period (a token bucket, [`governor`]'s GCRA, that holds `burst`
//! calls, by default the whole quota) and `concurrency` calls in flight at
//! once. Every rule that matches a call applies; the call passes only if it
//! fits them all. A call over a limit is refused at once (never queued) with
//! how long to wait before retrying.
//!
//! A call holds its concurrency slot until it ends, including the time it
//! waits on a human approval.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::Value;

use crate::identity::Principal;

/// Keys kept by one rule's rate limiter before idle ones are dropped.
const RETAIN_AT: usize = 10_000;

/// Retry hint of a concurrency refusal: a slot frees when a call ends,
/// which this does not know.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

/// Who a [`LimitRule`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Every caller.
    Everyone,
    /// The principal with this `sub`.
    Sub(String),
    /// Members of this group.
    Group(String),
}

impl Who {
    fn matches(&self, p: &Principal) -> bool {
        match self {
            Who::Everyone => true,
            Who::Sub(s) => p.sub == *s,
            Who::Group(g) => p.groups.iter().any(|x| x == g),
        }
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Everyone => f.write_str("every principal"),
            Who::Sub(s) => write!(f, "principal {s:?}"),
            Who::Group(g) => write!(f, "group {g:?}"),
        }
    }
}

/// A rate: `calls` per `period`, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per period.
    pub calls: NonZeroU32,
    /// The period.
    pub period: Duration,
    /// Calls allowed back to back (default: `calls`).
    pub burst: NonZeroU32,
}

/// A rate text that is not `N/PERIOD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a rate like 100/min, 10/s, 1000/h or 5/10s (calls, a slash, then a period)")]
pub struct RateError(pub String);

impl Rate {
    /// Parse `N/PERIOD`: a positive count, a slash, and a period in the
    /// duration grammar of [`crate::duration`] whose leading `1` may be left
    /// out (`100/min` = `100/1m`, `5/10s`).
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let err = || RateError(text.trim().to_string());
        let (n, period) = text.trim().split_once('/').ok_or_else(err)?;
        let calls: NonZeroU32 = n.trim().parse().map_err(|_| err())?;
        let period = period.trim();
        let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
            crate::duration::parse(period)
        } else {
            crate::duration::parse(&format!("1{period}"))
        }
        .map_err(|_| err())?;
        let rate = Rate {
            calls,
            period,
            burst: calls,
        };
        // A period too short to split into `calls` (under 1ns a call).
        rate.quota().ok_or_else(err)?;
        Ok(rate)
    }

    fn quota(&self) -> Option<Quota> {
        Quota::with_period(self.period / self.calls.get()).map(|q| q.allow_burst(self.burst))
    }
}

/// One `[[limits.rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRule {
    /// Who it applies to (each matching principal has its own budget).
    pub who: Who,
    /// The tool it applies to; `None`: every tool, counted together.
    pub tool: Option<String>,
    /// Calls per period.
    pub rate: Option<Rate>,
    /// Calls in flight at once.
    pub concurrency: Option<NonZeroU32>,
}

impl LimitRule {
    fn matches(&self, p: &Principal, tool: &str) -> bool {
        self.who.matches(p) && self.tool.as_deref().is_none_or(|t| t == tool)
    }

    fn describe(&self) -> String {
        match &self.tool {
            Some(t) => format!("{} on {t}", self.who),
            None => format!("{} on every tool", self.who),
        }
    }
}

/// Why a call was refused before it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The arguments are larger than the cap.
    TooLarge {
        /// Their size, serialised as JSON.
        bytes: usize,
        /// The cap.
        max: usize,
    },
    /// Over a rate or concurrency limit.
    Limited {
        /// `rate` or `concurrency`.
        kind: &'static str,
        /// The limit, in words (`60 calls per 60s for group "agents" on sql_query`).
        limit: String,
        /// Whole seconds to wait before retrying (at least 1).
        retry_after_s: u64,
    },
}

/// The calls in flight per principal of one rule.
#[derive(Default)]
struct InFlight(Mutex<HashMap<String, u32>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Compiled {
    rule: LimitRule,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    in_flight: Arc<InFlight>,
}

/// The limits of a gateway, with their live counts.
pub struct CallLimits {
    max_argument_bytes: Option<usize>,
    rules: Vec<Compiled>,
    clock: DefaultClock,
}

impl std::fmt::Debug for CallLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLimits")
            .field("max_argument_bytes", &self.max_argument_bytes)
            .field(
                "rules",
                &self.rules.iter().map(|c| &c.rule).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits::new(None, vec![])
    }
}

/// Concurrency slots a call holds; released when dropped.
#[derive(Default)]
pub struct Admission {
    held: Vec<(Arc<InFlight>, String)>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        for (in_flight, sub) in self.held.drain(..) {
            let mut m = in_flight.lock();
            if let Some(n) = m.get_mut(&sub) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&sub);
                }
            }
        }
    }
}

impl CallLimits {
    /// Limits with an argument cap (None: none) and rules.
    pub fn new(max_argument_bytes: Option<usize>, rules: Vec<LimitRule>) -> Self {
        let rules = rules
            .into_iter()
            .map(|rule| Compiled {
                rate: rule
                    .rate
                    .and_then(|r| r.quota())
                    .map(DefaultKeyedRateLimiter::keyed),
                rule,
                in_flight: Arc::default(),
            })
            .collect();
        CallLimits {
            max_argument_bytes,
            rules,
            clock: DefaultClock::default(),
        }
    }

    /// The cap on one call's arguments, if any.
    pub fn max_argument_bytes(&self) -> Option<usize> {
        self.max_argument_bytes
    }

    /// Admit a call or say why not. Concurrency is checked first, so a call
    /// refused for concurrency spends no rate; a call refused for rate
    /// holds no slot.
    pub fn admit(
        &self,
        principal: &Principal,
        tool: &str,
        args: &Value,
    ) -> Result<Admission, Refusal> {
        if let Some(max) = self.max_argument_bytes {
            let bytes = json_len(args);
            if bytes > max {
                return Err(Refusal::TooLarge { bytes, max });
            }
        }
        let mut admission = Admission::default();
        let matching: Vec<&Compiled> = self
            .rules
            .iter()
            .filter(|c| c.rule.matches(principal, tool))
            .collect();
        for c in &matching {
            let Some(max) = c.rule.concurrency else {
                continue;
            };
            let mut m = c.in_flight.lock();
            let n = m.entry(principal.sub.clone()).or_default();
            if *n >= max.get() {
                if *n == 0 {
                    m.remove(&principal.sub);
                }
                return Err(Refusal::Limited {
                    kind: "concurrency",
                    limit: format!("{max} calls at once for {}", c.rule.describe()),
                    retry_after_s: CONCURRENCY_RETRY.as_secs(),
                });
            }
            *n += 1;
            drop(m);
            admission
                .held
                .push((c.in_flight.clone(), principal.sub.clone()));
        }
        for c in &matching {
            let (Some(limiter), Some(rate)) = (&c.rate, &c.rule.rate) else {
                continue;
            };
            if limiter.len() > RETAIN_AT {
                limiter.retain_recent();
            }
            if let Err(not_until) = limiter.check_key(&principal.sub) {
                let wait = not_until.wait_time_from(self.clock.now());
                return Err(Refusal::Limited {
                    kind: "rate",
                    limit: format!(
                        "{} calls per {} for {}",
                        rate.calls,
                        humantime::format_duration(rate.period),
                        c.rule.describe()
                    ),
                    retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        Ok(admission)
    }
}

/// Bytes of `v` serialised as compact JSON, counted without building it.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a Value to an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alice() -> Principal {
        Principal {
            sub: "alice".into(),
            groups: vec!["agents".into()],
        }
    }

    fn bob() -> Principal {
        Principal {
            sub: "bob".into(),
            groups: vec![],
        }
    }

    #[test]
    fn rates_parse() {
        let r = Rate::parse("100/min").unwrap();
        assert_eq!((r.calls.get(), r.period), (100, Duration::from_secs(60)));
        let r = Rate::parse(" 5 / 10s ").unwrap();
        assert_eq!((r.calls.get(), r.period), (5, Duration::from_secs(10)));
        assert_eq!(
            Rate::parse("1/h").unwrap().period,
            Duration::from_secs(3600)
        );
        for bad in [
            "",
            "100",
            "0/min",
            "x/min",
            "10/",
            "10/0s",
            "10/fortnight",
            "-1/s",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn oversized_arguments_are_refused() {
        let l = CallLimits::new(Some(20), vec![]);
        assert!(l.admit(&alice(), "t", &json!({"a": "short"})).is_ok());
        let big = json!({"a": "x".repeat(100)});
        assert_eq!(
            l.admit(&alice(), "t", &big).err(),
            Some(Refusal::TooLarge {
                bytes: json_len(&big),
                max: 20
            })
        );
        assert_eq!(json_len(&big), serde_json::to_vec(&big).unwrap().len());
    }

    #[test]
    fn rate_is_per_principal_and_per_matching_tool() {
        let l = CallLimits::new(
            None,
            vec![LimitRule {
                who: Who::Group("agents".into()),
                tool: Some("sql_query".into()),
                rate: Some(Rate::parse("2/h").unwrap()),
                concurrency: None,
            }],
        );
        let args = json!({});
        assert!(l.admit(&alice(), "sql_query", &args).is_ok());
        assert!(l.admit(&alice(), "sql_query", &args).is_ok());
        match l.admit(&alice(), "sql_query", &args) {
            Err(Refusal::Limited {
                kind: "rate",
                retry_after_s,
                limit,
            }) => {
                assert!((1..=1800).contains(&retry_after_s), "{retry_after_s}");
                assert!(limit.contains("group \"agents\" on sql_query"), "{limit}");
            }
            other => panic!("{:?}", other.err()),
        }
        // Another tool, and a principal outside the group, are not limited.
        assert!(l.admit(&alice(), "k8s_list", &args).is_ok());
        for _ in 0..5 {
            assert!(l.admit(&bob(), "sql_query", &args).is_ok());
        }
    }

    #[test]
    fn concurrency_slots_are_released_on_drop() {
        let l = CallLimits::new(
            None,
            vec![LimitRule {
                who: Who::Everyone,
                tool: None,
                rate: None,
                concurrency: NonZeroU32::new(1),
            }],
        );
        let args = json!({});
        let first = l.admit(&alice(), "a", &args).unwrap();
        assert!(matches!(
            l.admit(&alice(), "b", &args),
            Err(Refusal::Limited {
                kind: "concurrency",
                ..
            })
        ));
        // Bob has his own slot.
        let _b = l.admit(&bob(), "a", &args).unwrap();
        drop(first);
        assert!(l.admit(&alice(), "b", &args).is_ok());
        assert!(l.rules[0].in_flight.lock().get("alice").is_none());
    }

    #[test]
    fn a_concurrency_refusal_spends_no_rate() {
        let l = CallLimits::new(
            None,
            vec![LimitRule {
                who: Who::Sub("alice".into()),
                tool: None,
                rate: Some(Rate::parse("1/h").unwrap()),
                concurrency: NonZeroU32::new(1),
            }],
        );
        let args = json!({});
        let held = l.admit(&alice(), "a", &args).unwrap();
        assert!(matches!(
            l.admit(&alice(), "a", &args),
            Err(Refusal::Limited {
                kind: "concurrency",
                ..
            })
        ));
        drop(held);
        // The one call of the hour was spent by the first call only.
        assert!(matches!(
            l.admit(&alice(), "a", &args),
            Err(Refusal::Limited { kind: "rate", .. })
        ));
    }
}
