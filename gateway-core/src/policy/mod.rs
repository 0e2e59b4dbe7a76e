//! Policy stage: Cedar. (Stub.)
