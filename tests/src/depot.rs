//! A test-only tool family, "depot": a warehouse of crates on shelves, shaped
//! unlike SQL on purpose, to show that a family plugs into the gateway
//! without touching gateway-core:
//!
//! * nested resources: `Tollgate::Crate::"<connection>/<shelf>/<crate>"` is
//!   `in` its `Tollgate::Shelf::"<connection>/<shelf>"`, which is `in` the
//!   Connection, and a crate carries an attribute (`hazard`);
//! * its own actions (`depot:inspect`, `depot:open`) and context (`site`,
//!   `labels`), declared in its own Cedar schema fragment;
//! * non-row output (one nested object), with a family field path
//!   (`Crate.secrets.code`) for masking rules;
//! * its own typed config section (`site`, `crates`), read with
//!   `gateway_core::section` (unknown keys refused);
//! * a review summary of its own (title, what will run with the seal as a
//!   field value, masked by the same field rule as results, and resources).
//!
//! Register it with `tollgate_server::connectors::register(Arc::new(DepotFactory))`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::connector::{
    AnalysisError, ConnectionInfo, Connector, ConnectorFactory, ExecLimits, ExecuteError,
    FieldOrigin, FieldPath, Plan, ToolOutput, ToolSpec,
};
use gateway_core::policy::Vocabulary;
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText, TextPart};
use serde::Deserialize;
use serde_json::{Value, json};

/// The family's Cedar schema fragment.
pub const FRAGMENT: &str = r#"
namespace Tollgate {
  entity Shelf in [Connection];
  entity Crate in [Shelf] = { hazard: Bool };
  type DepotContext = { site: String, labels: Set<String> };
  action "depot:inspect", "depot:open" appliesTo {
    principal: [User],
    resource: [Crate],
    context: DepotContext
  };
}
"#;

/// The factory of kind `depot`.
pub struct DepotFactory;

impl ConnectorFactory for DepotFactory {
    fn kind(&self) -> &'static str {
        "depot"
    }

    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String> {
        let section: DepotSection =
            gateway_core::section::deserialize(config).map_err(|e| e.to_string())?;
        let mut crates = BTreeMap::new();
        for c in section.crates {
            crates.insert((c.shelf.clone(), c.id.clone()), c);
        }
        Ok(Arc::new(Depot {
            info: ConnectionInfo {
                name: name.into(),
                kind: "depot".into(),
                description: section.description.unwrap_or_default(),
            },
            site: section.site,
            crates: Mutex::new(crates),
        }))
    }

    fn vocabulary(&self) -> Vocabulary {
        Vocabulary {
            family: "depot",
            fragment: FRAGMENT,
            unmask_resources: &["Crate"],
        }
    }
}

/// `[[connection]]` of kind `depot`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepotSection {
    #[allow(dead_code, reason = "read by the server")]
    name: String,
    #[allow(dead_code, reason = "read by the server")]
    kind: String,
    description: Option<String>,
    site: String,
    #[serde(default)]
    crates: Vec<CrateRecord>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CrateRecord {
    shelf: String,
    id: String,
    label: String,
    #[serde(default)]
    hazard: bool,
    #[serde(default)]
    labels: Vec<String>,
    /// The crate's seal code: a secret that masking rules name
    /// `Crate.secrets.code`.
    code: String,
    #[serde(default)]
    opened: bool,
}

struct Depot {
    info: ConnectionInfo,
    site: String,
    crates: Mutex<BTreeMap<(String, String), CrateRecord>>,
}

/// What `analyse` hands `execute`.
struct Prepared {
    open: bool,
    key: (String, String),
}

impl Depot {
    fn crate_resource(&self, c: &CrateRecord) -> Resource {
        let conn = &self.info.name;
        let shelf = Resource::new("Shelf", format!("{conn}/{}", c.shelf))
            .within(Resource::connection(conn));
        Resource::new("Crate", format!("{conn}/{}/{}", c.shelf, c.id))
            .within(shelf)
            .with_attribute("hazard", ContextValue::Bool(c.hazard))
    }
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("literal schemas are objects"),
    }
}

#[async_trait]
impl Connector for Depot {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn tools(&self) -> Vec<ToolSpec> {
        let input = object(json!({
            "type": "object",
            "properties": {
                "connection": {"type": "string"},
                "shelf": {"type": "string"},
                "crate": {"type": "string"}
            },
            "required": ["connection", "shelf", "crate"],
            "additionalProperties": false
        }));
        vec![
            ToolSpec {
                name: "depot_inspect".into(),
                description: "Show one crate of a depot.".into(),
                input_schema: input.clone(),
                output_schema: object(json!({"type": "object"})),
                read_only: true,
            },
            ToolSpec {
                name: "depot_open".into(),
                description: "Break a crate's seal.".into(),
                input_schema: input,
                output_schema: object(json!({"type": "object"})),
                read_only: false,
            },
        ]
    }

    fn analyse(&self, tool: &str, args: &Value) -> Result<Plan, AnalysisError> {
        let open = match tool {
            "depot_inspect" => false,
            "depot_open" => true,
            other => return Err(AnalysisError::UnknownTool(other.into())),
        };
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    AnalysisError::InvalidArguments(format!("`{k}` (string) is required"))
                })
        };
        let key = (arg("shelf")?, arg("crate")?);
        let crates = self.crates.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = crates.get(&key) else {
            return Err(AnalysisError::Unanalysable(format!(
                "no crate {} on shelf {}",
                key.1, key.0
            )));
        };
        let mut context = BTreeMap::new();
        context.insert("site".into(), ContextValue::String(self.site.clone()));
        context.insert(
            "labels".into(),
            ContextValue::StringSet(c.labels.iter().cloned().collect::<BTreeSet<_>>()),
        );
        let action = if open { "depot:open" } else { "depot:inspect" };
        let place = format!("{}/{}", c.shelf, c.id);
        let review = ReviewSummary {
            title: format!("{} crate {place}", if open { "open" } else { "inspect" }),
            runs: vec![ReviewItem {
                label: if open { "open" } else { "inspect" }.into(),
                resources: vec![place.clone()],
                text: ReviewText {
                    parts: if open {
                        vec![
                            TextPart::Code(format!("break seal of {place}, seal code ")),
                            TextPart::Field {
                                field: FieldPath::new(["Crate", "secrets", "code"]),
                                text: c.code.clone(),
                            },
                        ]
                    } else {
                        vec![TextPart::Code(format!("look at {place}"))]
                    },
                },
            }],
            resources: vec![place],
            diff: open.then(|| ReviewText::code("opened: false -> true")),
        };
        Ok(Plan {
            requests: vec![AccessRequest {
                action: action.into(),
                resource: self.crate_resource(c),
                context,
            }],
            review,
            read_only: !open,
            prepared: Box::new(Prepared { open, key }),
        })
    }

    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError> {
        let Some(p) = plan.prepared.downcast_ref::<Prepared>() else {
            return Err(ExecuteError::Other("not a depot plan".into()));
        };
        limits.check()?;
        let mut crates = self.crates.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = crates.get_mut(&p.key) else {
            return Err(ExecuteError::Target("the crate is gone".into()));
        };
        if p.open {
            c.opened = true;
        }
        let value = json!({"crate": {
            "shelf": c.shelf,
            "id": c.id,
            "label": c.label,
            "opened": c.opened,
            "secrets": {"code": c.code},
        }});
        Ok(ToolOutput {
            value,
            items: Some(1),
            item_list: None,
            truncated: false,
            field_origins: vec![FieldOrigin::new("/crate", FieldPath::new(["Crate"]))],
            item_guards: vec![],
            recording: None,
        })
    }
}
