//! SSH transport (filled in by the transport work).
