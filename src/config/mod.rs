//! Config: YAML → typed, validated [`Config`].
//!
//! [`parse`] checks shapes with serde (`raw`), then the rules across keys (`load`, `files`);
//! every error names the file, line:column and key path. `offspot:` is checked by [`offspot`].
mod error;
mod files;
mod load;
mod model;
pub mod offspot;
mod raw;

pub use error::ConfigError;
pub use load::{decode_base64, parse};
pub use model::*;

#[cfg(test)]
mod tests;
