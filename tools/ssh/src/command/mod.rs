//! Command analysis (filled in by the analysis work).
