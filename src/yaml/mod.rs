//! YAML that is not about any one schema: a marked node tree ([`node`]), a guarding first pass over the
//! events ([`prescan`]), and PyYAML's YAML 1.1 resolution ([`yaml11`], with its scalar constructors and
//! an emitter PyYAML reads back to the same values). The config and the cache policy parse with it;
//! OCI sizes use the resolver's implicit tags.

pub mod construct;
pub mod emit;
pub mod node;
pub mod prescan;
pub mod yaml11;

#[cfg(test)]
mod yaml11_tests;
