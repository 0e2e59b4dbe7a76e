//! Kind resolution through the cluster's API discovery: what an agent writes
//! as `kind` (`Pod`, `pods`, `po`, `deployments.apps`, `deployments.v1.apps`,
//! `v1/Secret`, `apps/v1/Deployment`) becomes one served resource (kind,
//! plural, group, version, scope). The catalog is read from the cluster,
//! cached by the connector and refreshed on a miss; a kind it does not hold
//! is unknown and the call is denied.

use futures::future::join_all;
use kube::core::ApiResource;
use kube::core::discovery::Scope;

/// One resource the cluster serves (preferred version of its group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    /// `Deployment`.
    pub kind: String,
    /// `deployments`.
    pub plural: String,
    /// `deployment` (discovery often leaves it empty: the kind lower-cased).
    pub singular: String,
    /// `deploy`.
    pub short_names: Vec<String>,
    /// `apps` ("" for core).
    pub group: String,
    /// `v1`.
    pub version: String,
    /// True for namespaced resources.
    pub namespaced: bool,
    /// Verbs the resource serves (`get`, `list`, ...).
    pub verbs: Vec<String>,
}

impl KindInfo {
    /// kube's dynamic type for requests.
    pub fn api_resource(&self) -> ApiResource {
        let api_version = if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        };
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version,
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// The scope kube expects.
    pub fn scope(&self) -> Scope {
        if self.namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        }
    }

    /// Does the resource serve `verb`?
    pub fn serves(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    fn named(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        self.kind.eq_ignore_ascii_case(name)
            || self.plural == lower
            || self.singular == lower
            || self.short_names.contains(&lower)
    }
}

/// Why a `kind` did not resolve.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KindError {
    /// Not a spelling of a kind at all.
    #[error("`kind` is not a Kubernetes kind (letters, digits, '.', '/' and '-' only)")]
    Invalid,
    /// Well formed but the cluster serves no such resource.
    #[error("unknown kind `{0}`: the cluster's API discovery serves no such resource")]
    Unknown(String),
}

/// Every resource the cluster serves: core first, then the groups in the
/// server's order (the order kubectl resolves an ambiguous short name in).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    kinds: Vec<KindInfo>,
}

/// What the `kind` argument names, before it is looked up.
#[derive(Debug, PartialEq, Eq)]
struct Spelling<'a> {
    name: &'a str,
    group: Option<&'a str>,
    version: Option<&'a str>,
}

fn looks_like_version(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'v' && b[1].is_ascii_digit() && b.iter().all(u8::is_ascii_alphanumeric)
}

fn spelling(spec: &str) -> Result<Spelling<'_>, KindError> {
    let ok = !spec.is_empty()
        && spec.len() <= 253
        && spec
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-'));
    if !ok {
        return Err(KindError::Invalid);
    }
    if spec.starts_with(['.', '/'])
        || spec.ends_with(['.', '/'])
        || spec.contains("..")
        || spec.contains("//")
    {
        return Err(KindError::Unknown(spec.to_string()));
    }
    let parts: Vec<&str> = spec.split('/').collect();
    let s = match parts.as_slice() {
        [name] => match name.split_once('.') {
            None => Spelling {
                name,
                group: None,
                version: None,
            },
            Some((name, rest)) => match rest.split_once('.') {
                Some((v, group)) if looks_like_version(v) => Spelling {
                    name,
                    group: Some(group),
                    version: Some(v),
                },
                _ if looks_like_version(rest) => Spelling {
                    name,
                    group: Some(""),
                    version: Some(rest),
                },
                _ => Spelling {
                    name,
                    group: Some(rest),
                    version: None,
                },
            },
        },
        [version, name] if looks_like_version(version) => Spelling {
            name,
            group: Some(""),
            version: Some(version),
        },
        [group, version, name] if looks_like_version(version) => Spelling {
            name,
            group: Some(group),
            version: Some(version),
        },
        _ => return Err(KindError::Unknown(spec.to_string())),
    };
    Ok(s)
}

impl Catalog {
    /// A catalog of these resources (tests, and [`discover`]).
    pub fn new(kinds: Vec<KindInfo>) -> Self {
        Catalog { kinds }
    }

    /// Number of resources.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// True when discovery found nothing.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The resource `spec` names.
    pub fn resolve(&self, spec: &str) -> Result<&KindInfo, KindError> {
        let s = spelling(spec)?;
        self.kinds
            .iter()
            .find(|k| {
                s.group.is_none_or(|g| k.group == g)
                    && s.version.is_none_or(|v| k.version == v)
                    && k.named(s.name)
            })
            .ok_or_else(|| KindError::Unknown(spec.to_string()))
    }
}

fn infos(
    group: &str,
    list: k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) -> Vec<KindInfo> {
    let version = list
        .group_version
        .rsplit_once('/')
        .map_or(list.group_version.as_str(), |(_, v)| v)
        .to_string();
    list.resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| KindInfo {
            singular: if r.singular_name.is_empty() {
                r.kind.to_ascii_lowercase()
            } else {
                r.singular_name
            },
            kind: r.kind,
            plural: r.name,
            short_names: r.short_names.unwrap_or_default(),
            group: group.to_string(),
            version: version.clone(),
            namespaced: r.namespaced,
            verbs: r.verbs,
        })
        .collect()
}

/// Read the catalog from the cluster: the core group's resources, then each
/// group's preferred version. A group whose listing fails (an aggregated API
/// that is down) is left out; a core failure fails the whole.
pub async fn discover(client: &kube::Client) -> Result<Catalog, kube::Error> {
    let core_versions = client.list_core_api_versions().await?;
    let core_version = core_versions
        .versions
        .first()
        .cloned()
        .unwrap_or_else(|| "v1".into());
    let mut kinds = infos("", client.list_core_api_resources(&core_version).await?);
    let groups = client.list_api_groups().await?;
    let wanted: Vec<(String, String)> = groups
        .groups
        .into_iter()
        .filter_map(|g| {
            let gv = g
                .preferred_version
                .or_else(|| g.versions.into_iter().next())?;
            Some((g.name, gv.group_version))
        })
        .collect();
    let lists = join_all(
        wanted
            .iter()
            .map(|(_, gv)| client.list_api_group_resources(gv)),
    )
    .await;
    for ((group, _), list) in wanted.iter().zip(lists) {
        if let Ok(list) = list {
            kinds.extend(infos(group, list));
        }
    }
    Ok(Catalog { kinds })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: &str, plural: &str, short: &[&str], group: &str, namespaced: bool) -> KindInfo {
        KindInfo {
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            group: group.into(),
            version: "v1".into(),
            namespaced,
            verbs: vec!["get".into(), "list".into()],
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            info("Pod", "pods", &["po"], "", true),
            info("Secret", "secrets", &[], "", true),
            info("Event", "events", &["ev"], "", true),
            info("Namespace", "namespaces", &["ns"], "", false),
            info("Deployment", "deployments", &["deploy"], "apps", true),
            info("Event", "events", &[], "events.k8s.io", true),
        ])
    }

    #[test]
    fn spellings_resolve() {
        let c = catalog();
        for (spec, kind, group) in [
            ("Pod", "Pod", ""),
            ("pods", "Pod", ""),
            ("po", "Pod", ""),
            ("pod", "Pod", ""),
            ("secret", "Secret", ""),
            ("secrets", "Secret", ""),
            ("v1/Secret", "Secret", ""),
            ("secrets.v1", "Secret", ""),
            ("Deployment", "Deployment", "apps"),
            ("deployments.apps", "Deployment", "apps"),
            ("deployment.apps", "Deployment", "apps"),
            ("deployments.v1.apps", "Deployment", "apps"),
            ("apps/v1/Deployment", "Deployment", "apps"),
            ("deploy", "Deployment", "apps"),
            ("events", "Event", ""),
            ("events.events.k8s.io", "Event", "events.k8s.io"),
            ("ns", "Namespace", ""),
        ] {
            let k = c.resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!((k.kind.as_str(), k.group.as_str()), (kind, group), "{spec}");
        }
    }

    #[test]
    fn unknown_and_invalid_kinds() {
        let c = catalog();
        for spec in [
            "Widget",
            "deployments.batch",
            "v2/Secret",
            "apps/v2/Deployment",
            "a/b/c/d",
            "apps/Deployment",
            ".",
            "pods.",
            "",
        ] {
            assert!(c.resolve(spec).is_err(), "{spec}");
        }
        assert_eq!(c.resolve("pods?x=1"), Err(KindError::Invalid));
        assert_eq!(c.resolve("--server=x y"), Err(KindError::Invalid));
    }
}
