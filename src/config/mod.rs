//! Config: YAML → typed, validated [`Config`]. (Loader being written.)
mod model;
pub mod node;
pub mod offspot;

pub use model::*;
