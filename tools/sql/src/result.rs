//! Building one result under caps: rows are appended one at a time and the
//! builder says when to stop (row cap or byte cap), so no driver ever
//! collects more than the caps allow. A driver asks [`RowSet::fits_at_least`]
//! with a lower bound of a row's JSON size taken from its raw bytes before
//! decoding it, so an oversized value is never turned into JSON.

use serde_json::{Value, json};

/// A result column: name and database type name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDesc {
    /// Column label.
    pub name: String,
    /// Database type name (e.g. `int4`, `VARCHAR`).
    pub type_name: String,
}

/// Row and byte caps of one call.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// At most this many rows.
    pub max_rows: u64,
    /// At most about this many bytes of JSON.
    pub max_bytes: usize,
}

/// Rows of one statement, capped.
#[derive(Debug, Clone)]
pub struct RowSet {
    /// Columns.
    pub columns: Vec<ColumnDesc>,
    /// `schema.table.column` per column where the driver knows it.
    pub origins: Vec<Option<String>>,
    /// Index in the call of the statement that returned these rows.
    pub statement: usize,
    /// Rows kept.
    pub rows: Vec<Vec<Value>>,
    /// True when a cap cut the rows.
    pub truncated: bool,
    bytes: usize,
    caps: Caps,
}

impl RowSet {
    /// An empty row set with these columns.
    pub fn new(columns: Vec<ColumnDesc>, caps: Caps) -> Self {
        let origins = vec![None; columns.len()];
        RowSet {
            columns,
            origins,
            statement: 0,
            rows: Vec::new(),
            truncated: false,
            bytes: 2,
            caps,
        }
    }

    /// True when no further row may be added (the next one would be cut).
    pub fn full(&self) -> bool {
        self.truncated || self.rows.len() as u64 >= self.caps.max_rows
    }

    /// Whether a row whose JSON takes at least `min_size` bytes (see
    /// [`json_size_row`]) could still fit: false (and `truncated` set) when
    /// it cannot, so the driver stops before decoding the row. A lower
    /// bound never refuses a row that [`RowSet::push`] would have kept.
    pub fn fits_at_least(&mut self, min_size: usize) -> bool {
        if self.full() || self.bytes.saturating_add(min_size) > self.caps.max_bytes {
            self.truncated = true;
            return false;
        }
        true
    }

    /// Add a row. Returns false (and sets `truncated`) when the row does not
    /// fit; the caller then stops reading.
    pub fn push(&mut self, row: Vec<Value>) -> bool {
        if self.full() {
            self.truncated = true;
            return false;
        }
        let size = json_size_row(&row);
        if self.bytes + size > self.caps.max_bytes {
            self.truncated = true;
            return false;
        }
        self.bytes += size;
        self.rows.push(row);
        true
    }
}

/// Which statement of a call returned the row set, and the driver's
/// `schema.table.column` per column where it knows one.
pub type Produced = (usize, Vec<Option<String>>);

/// What a `sql_query` execution produced.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// The last statement that returned a row set (has columns), if any.
    pub rows: Option<RowSet>,
    /// Rows affected by the last statement (for a DML/DDL-only call).
    pub affected: u64,
}

impl QueryOutcome {
    /// The `sql_query` structured result.
    /// With it: for a row set, the index of the statement that returned it
    /// and the driver's `schema.table.column` per column where known.
    pub fn into_value(self, statements: Value) -> (Value, u64, bool, Option<Produced>) {
        match self.rows {
            Some(set) => {
                let count = set.rows.len() as u64;
                let columns: Vec<Value> = set
                    .columns
                    .iter()
                    .map(|c| json!({"name": c.name, "type": c.type_name}))
                    .collect();
                let v = json!({
                    "columns": columns,
                    "rows": set.rows,
                    "row_count": count,
                    "truncated": set.truncated,
                    "statements": statements,
                });
                (v, count, set.truncated, Some((set.statement, set.origins)))
            }
            None => {
                let v = json!({
                    "columns": [],
                    "rows": [],
                    "row_count": self.affected,
                    "truncated": false,
                    "statements": statements,
                });
                (v, self.affected, false, None)
            }
        }
    }
}

/// Approximate serialized size of a row (cheap, no allocation).
pub fn json_size_row(row: &[Value]) -> usize {
    2 + row.iter().map(|v| json_size(v) + 1).sum::<usize>()
}

/// Approximate serialized size of a JSON value.
pub fn json_size(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| json_size(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() + 4 + json_size(x))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<ColumnDesc> {
        vec![ColumnDesc {
            name: "a".into(),
            type_name: "text".into(),
        }]
    }

    #[test]
    fn row_cap_sets_truncated() {
        let mut s = RowSet::new(
            cols(),
            Caps {
                max_rows: 2,
                max_bytes: 1 << 20,
            },
        );
        assert!(s.push(vec![json!("x")]));
        assert!(s.push(vec![json!("y")]));
        assert!(s.full());
        assert!(!s.push(vec![json!("z")]));
        assert!(s.truncated);
        assert_eq!(s.rows.len(), 2);
    }

    #[test]
    fn byte_cap_sets_truncated() {
        let mut s = RowSet::new(
            cols(),
            Caps {
                max_rows: 100,
                max_bytes: 50,
            },
        );
        assert!(s.push(vec![json!("0123456789")]));
        assert!(!s.push(vec![json!("0123456789012345678901234567890123456789")]));
        assert!(s.truncated);
        assert_eq!(s.rows.len(), 1);
    }

    #[test]
    fn a_row_too_big_by_its_lower_bound_is_refused_before_decoding() {
        let mut s = RowSet::new(
            cols(),
            Caps {
                max_rows: 100,
                max_bytes: 50,
            },
        );
        assert!(s.fits_at_least(40));
        assert!(!s.truncated);
        assert!(s.push(vec![json!("0123456789")]));
        assert!(!s.fits_at_least(40));
        assert!(s.truncated);
        assert!(!s.fits_at_least(usize::MAX));
    }
}
