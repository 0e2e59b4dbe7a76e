//! The pipeline, top to bottom. (Stub.)
