//! Audit stage: one tamper-evident event per tool call. (Stub.)
