//! JSON parameters → values bound to the types a prepared PostgreSQL
//! statement expects. Parameters are always bound, never spliced into SQL; a
//! value that does not fit its type is a clear error naming `$n`.

use std::str::FromStr;

use base64::Engine as _;
use bytes::BytesMut;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};

/// A bound parameter.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// SQL NULL of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Text sent as-is: its binary form equals its text for text-like types and enums.
#[derive(Debug)]
struct Text(String);

impl ToSql for Text {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn got(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Convert `params` for a statement whose placeholders have `types`. Each
/// statement binds the first `types.len()` params.
pub fn convert(types: &[Type], params: &[Value]) -> Result<Vec<Param>, String> {
    if types.len() > params.len() {
        return Err(format!(
            "the statement has {} placeholder(s) but {} param(s) were given",
            types.len(),
            params.len()
        ));
    }
    types
        .iter()
        .zip(params)
        .enumerate()
        .map(|(i, (ty, v))| {
            one(ty, v).map_err(|m| {
                format!(
                    "parameter ${} ({}): {m}",
                    i + 1,
                    super::values::type_name(ty)
                )
            })
        })
        .collect()
}

fn one(ty: &Type, v: &Value) -> Result<Param, String> {
    if v.is_null() {
        return Ok(Box::new(Null));
    }
    match ty.kind() {
        Kind::Enum(_) => return string(v).map(|s| Box::new(Text(s.to_string())) as Param),
        Kind::Domain(base) => return one(base, v),
        Kind::Array(elem) => return array(elem, v),
        _ => {}
    }
    let mismatch = |want: &str| format!("expected {want}, got {}", got(v));
    Ok(match ty.oid() {
        16 => Box::new(match v {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" || s == "false" => s == "true",
            _ => return Err(mismatch("a boolean")),
        }),
        21 => Box::new(i16::try_from(int(v)?).map_err(|_| "out of range for int2".to_string())?),
        23 => Box::new(i32::try_from(int(v)?).map_err(|_| "out of range for int4".to_string())?),
        20 => Box::new(int(v)?),
        26 => Box::new(u32::try_from(int(v)?).map_err(|_| "out of range for oid".to_string())?),
        700 => Box::new(flt(v)? as f32),
        701 => Box::new(flt(v)?),
        1700 => {
            let s = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(mismatch("a number or a decimal string")),
            };
            Box::new(
                Decimal::from_str(&s)
                    .or_else(|_| Decimal::from_scientific(&s))
                    .map_err(|_| "not a decimal number (or beyond 28 digits)".to_string())?,
            )
        }
        19 | 25 | 705 | 1042 | 1043 | 142 => Box::new(Text(string(v)?.to_string())),
        114 | 3802 => Box::new(match v {
            Value::String(s) => serde_json::from_str::<Value>(s)
                .map_err(|_| "a string for a json parameter must hold JSON text".to_string())?,
            other => other.clone(),
        }),
        2950 => Box::new(uuid::Uuid::parse_str(string(v)?).map_err(|_| "not a UUID".to_string())?),
        1184 => Box::new(
            DateTime::parse_from_rfc3339(string(v)?)
                .map_err(|_| {
                    "expected an RFC 3339 timestamp with offset, e.g. 2024-05-01T12:00:00Z"
                        .to_string()
                })?
                .with_timezone(&Utc),
        ),
        1114 => {
            let s = string(v)?;
            let t = DateTime::parse_from_rfc3339(s)
                .map(|d| d.naive_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| "expected a timestamp like 2024-05-01T12:00:00".to_string())?;
            Box::new(t)
        }
        1082 => Box::new(
            NaiveDate::parse_from_str(string(v)?, "%Y-%m-%d")
                .map_err(|_| "expected a date YYYY-MM-DD".to_string())?,
        ),
        1083 => Box::new(
            NaiveTime::parse_from_str(string(v)?, "%H:%M:%S%.f")
                .map_err(|_| "expected a time HH:MM:SS".to_string())?,
        ),
        17 => Box::new(
            base64::engine::general_purpose::STANDARD
                .decode(string(v)?)
                .map_err(|_| "expected base64 for bytea".to_string())?,
        ),
        _ if ty.name() == "citext" => Box::new(Text(string(v)?.to_string())),
        _ => {
            return Err(format!(
                "cannot bind JSON to type {}; pass text and cast in SQL, e.g. CAST($n::text AS {})",
                ty.name(),
                ty.name()
            ));
        }
    })
}

fn string(v: &Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected a string, got {}", got(v)))
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| "expected an integer".to_string()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "expected an integer".to_string()),
        _ => Err(format!("expected an integer, got {}", got(v))),
    }
}

fn flt(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "expected a number".to_string()),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| "expected a number".to_string()),
        },
        _ => Err(format!("expected a number, got {}", got(v))),
    }
}

fn array(elem: &Type, v: &Value) -> Result<Param, String> {
    let Value::Array(items) = v else {
        return Err(format!("expected an array, got {}", got(v)));
    };
    macro_rules! vec_of {
        ($t:ty, $f:expr) => {{
            let out: Result<Vec<Option<$t>>, String> = items
                .iter()
                .map(|x| {
                    if x.is_null() {
                        Ok(None)
                    } else {
                        $f(x).map(Some)
                    }
                })
                .collect();
            Box::new(out?) as Param
        }};
    }
    Ok(match elem.oid() {
        16 => vec_of!(bool, |x: &Value| x
            .as_bool()
            .ok_or_else(|| "expected booleans".to_string())),
        21 => {
            vec_of!(i16, |x: &Value| int(x).and_then(
                |i| i16::try_from(i).map_err(|_| "out of range".to_string())
            ))
        }
        23 => {
            vec_of!(i32, |x: &Value| int(x).and_then(
                |i| i32::try_from(i).map_err(|_| "out of range".to_string())
            ))
        }
        20 => vec_of!(i64, int),
        701 => vec_of!(f64, flt),
        700 => vec_of!(f32, |x: &Value| flt(x).map(|f| f as f32)),
        25 | 1043 | 1042 | 19 => vec_of!(String, |x: &Value| string(x).map(str::to_string)),
        2950 => vec_of!(uuid::Uuid, |x: &Value| string(x).and_then(|s| {
            uuid::Uuid::parse_str(s).map_err(|_| "not a UUID".to_string())
        })),
        _ => return Err(format!("cannot bind a JSON array to {}[]", elem.name())),
    })
}
