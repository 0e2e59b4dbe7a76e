//! Pieces shared by the sqlx-based drivers (MySQL/MariaDB, SQLite): binding
//! JSON parameters and mapping sqlx errors. Parameters are bound by their
//! JSON type (these servers infer or coerce parameter types themselves).

use gateway_core::connector::ExecuteError;
use serde_json::Value;
use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

/// Bind one JSON value to a query. Objects and arrays are bound as JSON text.
pub fn bind_json<'q, DB>(
    q: Query<'q, DB, <DB as Database>::Arguments>,
    v: &Value,
) -> Query<'q, DB, <DB as Database>::Arguments>
where
    DB: Database,
    Option<String>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
{
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                q.bind(i)
            } else if n.is_u64() {
                q.bind(n.to_string())
            } else {
                q.bind(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => q.bind(s.clone()),
        other => q.bind(other.to_string()),
    }
}

/// Map the non-database sqlx errors (I/O, TLS, pool) and leave database
/// errors to the driver.
pub fn map_common(e: sqlx::Error) -> Result<ExecuteError, sqlx::Error> {
    Ok(match e {
        sqlx::Error::Io(e) => ExecuteError::Unavailable(format!("cannot reach the database: {e}")),
        sqlx::Error::Tls(e) => ExecuteError::Unavailable(format!("TLS error: {e}")),
        sqlx::Error::PoolTimedOut => {
            ExecuteError::Unavailable("timed out connecting to the database".into())
        }
        sqlx::Error::PoolClosed => ExecuteError::Unavailable("connection pool closed".into()),
        sqlx::Error::WorkerCrashed => ExecuteError::Unavailable("database worker crashed".into()),
        sqlx::Error::Protocol(m) => ExecuteError::Unavailable(format!("protocol error: {m}")),
        sqlx::Error::Configuration(e) => {
            ExecuteError::Unavailable(format!("configuration error: {e}"))
        }
        sqlx::Error::Database(_) => return Err(e),
        other => ExecuteError::Target(other.to_string()),
    })
}

/// A decimal/number given as text, as JSON (see [`crate::pg::values::decimal_json`]).
pub fn decimal(s: String) -> Value {
    crate::pg::values::decimal_json(s)
}

/// The params a prepared statement binds: the first N, N being its own
/// placeholder count (as sqlx reports it); too few params is an error.
pub fn params_for<'p, T>(
    placeholders: Option<sqlx::Either<&[T], usize>>,
    params: &'p [Value],
) -> Result<&'p [Value], ExecuteError> {
    let n = match placeholders {
        Some(sqlx::Either::Left(types)) => types.len(),
        Some(sqlx::Either::Right(n)) => n,
        None => 0,
    };
    params.get(..n).ok_or_else(|| {
        ExecuteError::Target(format!(
            "the statement has {n} placeholder(s) but {} param(s) were given",
            params.len()
        ))
    })
}

/// Read `rows` into `set` until they end or a cap stops the set; each row's
/// values come from `decode` (column index → JSON value). `min_size` gives
/// a lower bound of a column's JSON size from its raw bytes (without
/// decoding): a row that cannot fit by those bounds stops the read before
/// any of it is decoded.
pub async fn fill<R: sqlx::Row>(
    rows: impl futures::Stream<Item = Result<R, sqlx::Error>>,
    set: &mut crate::result::RowSet,
    min_size: impl Fn(&R, usize) -> usize,
    decode: impl Fn(&R, usize) -> Result<Value, String>,
    map_err: impl Fn(sqlx::Error) -> ExecuteError,
) -> Result<(), ExecuteError> {
    use futures::TryStreamExt;
    let mut rows = std::pin::pin!(rows);
    while let Some(row) = rows.try_next().await.map_err(&map_err)? {
        // As `json_size_row` counts a row: brackets and a comma per value.
        let at_least = (0..row.len()).fold(2usize, |n, i| {
            n.saturating_add(min_size(&row, i)).saturating_add(1)
        });
        if !set.fits_at_least(at_least) {
            break;
        }
        let values = (0..row.len())
            .map(|i| decode(&row, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ExecuteError::Other)?;
        if !set.push(values) {
            break;
        }
    }
    Ok(())
}
