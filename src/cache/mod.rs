//! Download cache (being written).
pub mod evict;
pub mod policy;
