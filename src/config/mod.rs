//! Config: YAML → typed, validated [`Config`]. (Being written.)
pub mod node;
