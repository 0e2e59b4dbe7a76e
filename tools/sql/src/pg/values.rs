//! PostgreSQL binary wire values → typed JSON. Decodes from the raw bytes of
//! each column so that every type is handled in one place (including arrays,
//! domains and enums) and nothing can panic: a value that cannot be decoded
//! becomes an error string, never a crash.

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Number, Value};
use tokio_postgres::types::{FromSql, Kind, Type};

/// Raw bytes of one column of one row (None = SQL NULL).
pub struct RawValue<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Display name of a type for the `type` field of a column.
pub fn type_name(ty: &Type) -> String {
    match ty.kind() {
        Kind::Array(elem) => format!("{}[]", elem.name()),
        _ => ty.name().to_string(),
    }
}

/// True when [`decode`] understands this type (others come back as base64
/// of the binary form, and the column type says so).
pub fn supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Enum(_) => true,
        Kind::Array(elem) | Kind::Domain(elem) => supported(elem),
        _ => {
            matches!(
                ty.oid(),
                16..=26
                    | 28
                    | 114
                    | 142
                    | 650
                    | 700
                    | 701
                    | 705
                    | 790
                    | 829
                    | 869
                    | 1042
                    | 1043
                    | 1082
                    | 1083
                    | 1114
                    | 1184
                    | 1186
                    | 1266
                    | 1560
                    | 1562
                    | 1700
                    | 2950
                    | 3220
                    | 3802
            ) || is_oid_alias(ty.oid())
                || ty.name() == "citext"
        }
    }
}

fn is_oid_alias(oid: u32) -> bool {
    // regproc, regclass, regtype, regprocedure, regoper, regoperator, regconfig, regdictionary, regnamespace, regrole
    matches!(
        oid,
        24 | 2202 | 2203 | 2204 | 2205 | 2206 | 3734 | 3769 | 4089 | 4096
    )
}

type R = Result<Value, String>;

fn be<const N: usize>(raw: &[u8], at: usize) -> Result<[u8; N], String> {
    raw.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| "truncated value".to_string())
}
fn i16_at(raw: &[u8], at: usize) -> Result<i16, String> {
    Ok(i16::from_be_bytes(be::<2>(raw, at)?))
}
fn i32_at(raw: &[u8], at: usize) -> Result<i32, String> {
    Ok(i32::from_be_bytes(be::<4>(raw, at)?))
}
fn i64_at(raw: &[u8], at: usize) -> Result<i64, String> {
    Ok(i64::from_be_bytes(be::<8>(raw, at)?))
}

fn text(raw: &[u8]) -> R {
    Ok(Value::String(String::from_utf8_lossy(raw).into_owned()))
}

fn float(f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn timestamp(raw: &[u8], tz: bool) -> R {
    let us = i64_at(raw, 0)?;
    if us == i64::MAX {
        return Ok(Value::String("infinity".into()));
    }
    if us == i64::MIN {
        return Ok(Value::String("-infinity".into()));
    }
    let t = pg_epoch()
        .checked_add_signed(TimeDelta::microseconds(us))
        .ok_or("timestamp out of range")?;
    Ok(Value::String(if tz {
        DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.f").to_string()
    }))
}

fn date(raw: &[u8]) -> R {
    let d = i32_at(raw, 0)?;
    if d == i32::MAX {
        return Ok(Value::String("infinity".into()));
    }
    if d == i32::MIN {
        return Ok(Value::String("-infinity".into()));
    }
    let day = pg_epoch()
        .date()
        .checked_add_signed(TimeDelta::days(d as i64))
        .ok_or("date out of range")?;
    Ok(Value::String(day.format("%Y-%m-%d").to_string()))
}

fn time_of(us: i64) -> Result<String, String> {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    if secs == 86_400 {
        return Ok("24:00:00".into());
    }
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, (micros * 1000) as u32)
        .ok_or("time out of range")?;
    Ok(t.format("%H:%M:%S%.f").to_string())
}

fn interval(raw: &[u8]) -> R {
    let us = i64_at(raw, 0)?;
    let days = i32_at(raw, 8)?;
    let months = i32_at(raw, 12)?;
    let mut parts = Vec::new();
    let (y, m) = (months / 12, months % 12);
    let plural =
        |n: i32, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
    if y != 0 {
        parts.push(plural(y, "year", "years"));
    }
    if m != 0 {
        parts.push(plural(m, "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days, "day", "days"));
    }
    if us != 0 || parts.is_empty() {
        let neg = us < 0;
        let a = us.unsigned_abs();
        let (h, rem) = (a / 3_600_000_000, a % 3_600_000_000);
        let (mi, rem) = (rem / 60_000_000, rem % 60_000_000);
        let (s, f) = (rem / 1_000_000, rem % 1_000_000);
        let mut t = format!("{}{h:02}:{mi:02}:{s:02}", if neg { "-" } else { "" });
        if f != 0 {
            t.push_str(format!(".{f:06}").trim_end_matches('0'));
        }
        parts.push(t);
    }
    Ok(Value::String(parts.join(" ")))
}

fn inet(raw: &[u8]) -> R {
    let family = *raw.first().ok_or("truncated inet")?;
    let bits = *raw.get(1).ok_or("truncated inet")?;
    let is_cidr = *raw.get(2).ok_or("truncated inet")? != 0;
    let addr = raw.get(4..).ok_or("truncated inet")?;
    let (s, max) = match family {
        2 => (
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(addr).map_err(|_| "bad inet")?)
                .to_string(),
            32,
        ),
        _ => (
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).map_err(|_| "bad inet")?)
                .to_string(),
            128,
        ),
    };
    Ok(Value::String(if is_cidr || bits != max {
        format!("{s}/{bits}")
    } else {
        s
    }))
}

fn bits(raw: &[u8]) -> R {
    let n = i32_at(raw, 0)?.max(0) as usize;
    let bytes = raw.get(4..).unwrap_or_default();
    let s: String = (0..n)
        .map(|i| {
            if bytes.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0) {
                '1'
            } else {
                '0'
            }
        })
        .collect();
    Ok(Value::String(s))
}

/// PostgreSQL binary `numeric` → exact decimal text (`NaN`, `Infinity` too).
pub fn numeric_text(raw: &[u8]) -> Result<String, String> {
    let ndigits = i16_at(raw, 0)?.max(0) as usize;
    let weight = i16_at(raw, 2)? as i64;
    let sign = u16::from_be_bytes(be::<2>(raw, 4)?);
    let dscale = u16::from_be_bytes(be::<2>(raw, 6)?) as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digit = |i: i64| -> Result<i16, String> {
        if i < 0 || i as usize >= ndigits {
            Ok(0)
        } else {
            i16_at(raw, 8 + 2 * i as usize)
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let d = digit(i)?;
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)?));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    if out == "-0" || (out.starts_with("-0.") && out[3..].bytes().all(|b| b == b'0')) {
        out.remove(0);
    }
    Ok(out)
}

/// A decimal text as JSON: a number when f64 holds it exactly (at most 15
/// significant digits), else the exact string.
pub fn decimal_json(s: String) -> Value {
    let digits = s.trim_start_matches('-').replace('.', "");
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    if !s.contains('.')
        && let Ok(i) = s.parse::<i64>()
    {
        return Value::Number(i.into());
    }
    if significant <= 15
        && let Ok(f) = s.parse::<f64>()
        && f.is_finite()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s)
}

/// A lower bound of the JSON size ([`crate::result::json_size`]) of the
/// value [`decode`] makes of `raw`, without decoding it. Text, bytea (base64),
/// enums and unsupported types (base64) come back at least as long as their
/// raw bytes; JSON text keeps at least a sixth of its bytes that are not
/// whitespace (`\uXXXX` escapes shrink to one byte); anything else at least
/// a quarter of its bytes past an array's header (an element's 4-byte
/// length, a number's binary form: fixed sizes JSON does not undercut more).
pub fn min_json_size(ty: &Type, raw: &[u8]) -> usize {
    match ty.kind() {
        Kind::Enum(_) => return raw.len(),
        Kind::Domain(base) => return min_json_size(base, raw),
        Kind::Array(elem) if is_json(elem) => return json_text_floor(raw),
        Kind::Array(_) => {
            let ndim = i32_at(raw, 0).map_or(0, |n| n.clamp(0, 64) as usize);
            return raw.len().saturating_sub(12 + 8 * ndim) / 4;
        }
        _ => {}
    }
    match ty.oid() {
        17 | 18 | 19 | 25 | 142 | 705 | 1042 | 1043 => raw.len(),
        114 | 3802 => json_text_floor(raw),
        _ if !supported(ty) || ty.name() == "citext" => raw.len(),
        _ => raw.len() / 4,
    }
}

fn is_json(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) => is_json(base),
        _ => matches!(ty.oid(), 114 | 3802),
    }
}

fn json_text_floor(raw: &[u8]) -> usize {
    raw.iter().filter(|b| !b.is_ascii_whitespace()).count() / 6
}

/// Decode one non-null value of type `ty`.
pub fn decode(ty: &Type, raw: &[u8]) -> R {
    match ty.kind() {
        Kind::Enum(_) => return text(raw),
        Kind::Domain(base) => return decode(base, raw),
        Kind::Array(elem) => return array(elem, raw),
        _ => {}
    }
    let e = |x: Box<dyn std::error::Error + Sync + Send>| x.to_string();
    match ty.oid() {
        16 => Ok(Value::Bool(raw.first().is_some_and(|b| *b != 0))),
        17 => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(raw),
        )),
        18 => text(raw),
        19 | 25 | 142 | 705 | 1042 | 1043 => text(raw),
        20 => Ok(Value::Number(i64_at(raw, 0)?.into())),
        21 => Ok(Value::Number(i16_at(raw, 0)?.into())),
        23 => Ok(Value::Number(i32_at(raw, 0)?.into())),
        26 | 28 => Ok(Value::Number((i32_at(raw, 0)? as u32).into())),
        oid if is_oid_alias(oid) => Ok(Value::Number((i32_at(raw, 0)? as u32).into())),
        114 | 3802 => serde_json::Value::from_sql(ty, raw).map_err(e),
        650 | 869 => inet(raw),
        700 => Ok(float(f32::from_be_bytes(be::<4>(raw, 0)?) as f64)),
        701 => Ok(float(f64::from_be_bytes(be::<8>(raw, 0)?))),
        790 => {
            let c = i64_at(raw, 0)?;
            let sign = if c < 0 { "-" } else { "" };
            Ok(Value::String(format!(
                "{sign}{}.{:02}",
                c.unsigned_abs() / 100,
                c.unsigned_abs() % 100
            )))
        }
        829 => Ok(Value::String(
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        )),
        1082 => date(raw),
        1083 => Ok(Value::String(time_of(i64_at(raw, 0)?)?)),
        1114 => timestamp(raw, false),
        1184 => timestamp(raw, true),
        1186 => interval(raw),
        1266 => {
            let t = time_of(i64_at(raw, 0)?)?;
            let west = i32_at(raw, 8)?;
            let east = -west;
            let sign = if east < 0 { '-' } else { '+' };
            let a = east.unsigned_abs();
            Ok(Value::String(format!(
                "{t}{sign}{:02}:{:02}",
                a / 3600,
                (a % 3600) / 60
            )))
        }
        1560 | 1562 => bits(raw),
        1700 => Ok(decimal_json(numeric_text(raw)?)),
        2950 => Ok(Value::String(
            uuid::Uuid::from_slice(raw)
                .map_err(|x| x.to_string())?
                .to_string(),
        )),
        3220 => {
            let v = i64_at(raw, 0)? as u64;
            Ok(Value::String(format!(
                "{:X}/{:X}",
                v >> 32,
                v & 0xffff_ffff
            )))
        }
        _ if ty.name() == "citext" => text(raw),
        _ => Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(raw),
        )),
    }
}

fn array(elem: &Type, raw: &[u8]) -> R {
    let ndim = i32_at(raw, 0)?.max(0) as usize;
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let mut at = 12;
    let mut dims = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        dims.push(i32_at(raw, at)?.max(0) as usize);
        at += 8;
    }
    let total: usize = dims.iter().product();
    let mut items = Vec::with_capacity(total.min(1 << 16));
    for _ in 0..total {
        let len = i32_at(raw, at)?;
        at += 4;
        if len < 0 {
            items.push(Value::Null);
        } else {
            let bytes = raw.get(at..at + len as usize).ok_or("truncated array")?;
            items.push(decode(elem, bytes)?);
            at += len as usize;
        }
    }
    // Nest from the innermost dimension outwards.
    for &d in dims.iter().skip(1).rev() {
        let d = d.max(1);
        let mut grouped = Vec::with_capacity(items.len() / d);
        let mut it = items.into_iter();
        loop {
            let chunk: Vec<Value> = it.by_ref().take(d).collect();
            if chunk.is_empty() {
                break;
            }
            grouped.push(Value::Array(chunk));
        }
        items = grouped;
    }
    Ok(Value::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int4_array(values: &[Option<i32>]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in [1i32, 1, 23, values.len() as i32, 1] {
            v.extend(n.to_be_bytes());
        }
        for x in values {
            match x {
                Some(x) => {
                    v.extend(4i32.to_be_bytes());
                    v.extend(x.to_be_bytes());
                }
                None => v.extend((-1i32).to_be_bytes()),
            }
        }
        v
    }

    #[test]
    fn min_json_size_never_exceeds_the_decoded_size() {
        let spaced = format!("[{}]", " ".repeat(1000));
        let escaped = format!("\"{}\"", "\\u0001".repeat(100));
        let jsonb = [&[1u8][..], br#"{"a": [1, 2, null], "b": "x"}"#].concat();
        let cases: Vec<(Type, Vec<u8>)> = vec![
            (Type::TEXT, b"hello".to_vec()),
            (Type::TEXT, Vec::new()),
            (Type::BYTEA, vec![0; 10]),
            (Type::JSON, spaced.into_bytes()),
            (Type::JSON, escaped.into_bytes()),
            (Type::JSONB, jsonb),
            (Type::INT8, 7i64.to_be_bytes().to_vec()),
            (Type::BOOL, vec![1]),
            (Type::NUMERIC, num(1, 0, 0, 0, &[7])),
            (Type::INT4_ARRAY, int4_array(&[Some(1), None, Some(3)])),
            (Type::INT4_ARRAY, int4_array(&[])),
            (Type::INT4_ARRAY, vec![0; 12]),
        ];
        for (ty, raw) in cases {
            let decoded = decode(&ty, &raw).unwrap();
            let size = crate::result::json_size(&decoded);
            let bound = min_json_size(&ty, &raw);
            assert!(
                bound <= size,
                "{ty}: bound {bound} > size {size} of {decoded}"
            );
        }
        // Long text: the bound is its length, so it is refused undecoded.
        assert_eq!(min_json_size(&Type::TEXT, &[b'x'; 5000]), 5000);
    }

    fn num(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(ndigits.to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_exact() {
        // 12345678.9012 = [1234, 5678, 9012], weight 1, dscale 4
        assert_eq!(
            numeric_text(&num(3, 1, 0, 4, &[1234, 5678, 9012])).unwrap(),
            "12345678.9012"
        );
        // -0.05 = [500], weight -1, dscale 2
        assert_eq!(
            numeric_text(&num(1, -1, 0x4000, 2, &[500])).unwrap(),
            "-0.05"
        );
        // 10000 = [1], weight 1, dscale 0
        assert_eq!(numeric_text(&num(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(numeric_text(&num(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&num(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(decimal_json("12.50".into()), serde_json::json!(12.5));
        assert_eq!(
            decimal_json("123456789012345678901234567890.123".into()),
            serde_json::json!("123456789012345678901234567890.123")
        );
    }

    #[test]
    fn interval_text() {
        let mut raw = Vec::new();
        raw.extend((4 * 3_600_000_000i64 + 5 * 60_000_000 + 6_500_000).to_be_bytes());
        raw.extend(3i32.to_be_bytes());
        raw.extend(14i32.to_be_bytes());
        assert_eq!(
            interval(&raw).unwrap(),
            Value::String("1 year 2 mons 3 days 04:05:06.5".into())
        );
    }
}
