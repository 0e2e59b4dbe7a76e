//! # tollgate-sql
//!
//! Tollgate's SQL connector family: `sql_query` and `sql_schema` over
//! PostgreSQL, MySQL/MariaDB and SQLite connections.
//!
//! - [`analysis`]: what the SQL will do (statements, tables, access requests).
//! - [`connector`]: the [`gateway_core::Connector`] impl and the
//!   [`SqlConnectorFactory`] the server registers (`SqlConnectorFactory::all()`).
//! - [`affected`]: the per-call cap on rows changed (`max_affected_rows`).
//! - [`sampling`]: classification of columns by sampling their values
//!   (`[masking.classification]`), which masks them by lineage.
//! - [`review`]: each statement cut into code and literal parts, so
//!   reviewers see literals masked one by one.
//! - [`vocabulary`]: the family's Cedar schema fragment and the resources
//!   (tables, functions) its requests name.
//! - [`pg`], [`mysql`], [`sqlite`]: execution with the credentials the server
//!   holds, each behind the [`engine::Engine`] trait.
//!
//! Invariant: only the canonical SQL of analysed statements executes, inside
//! one transaction per call (read-only when the plan is), with bound
//! parameters, under row/byte caps and a statement timeout; errors never carry
//! credentials.
#![deny(missing_docs)]

pub mod affected;
pub mod analysis;
pub mod config;
pub mod connector;
pub mod engine;
pub mod listing;
pub mod mysql;
pub mod origins;
pub mod pg;
pub mod prepared;
pub mod result;
pub mod review;
pub mod sampling;
pub mod scrub;
pub mod sqlite;
mod sqlx_common;
pub mod tools;
pub mod vocabulary;

pub use config::SqlConfig;
pub use connector::{SqlConnector, SqlConnectorFactory, plan_for_query, plan_for_schema};
