//! # tollgate-sql
//!
//! Tollgate's SQL connector family: `sql_query` and `sql_schema` over
//! PostgreSQL, MySQL/MariaDB and SQLite connections.
#![deny(missing_docs)]

pub mod analysis;
