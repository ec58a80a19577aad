//! Download cache (being written).
pub mod index;
pub mod lock;
pub mod store;
