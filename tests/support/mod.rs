//! Shared helpers for integration tests: `mod support;` in any `tests/*.rs`.
// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

pub mod fetch_kit;
pub mod fixtures;
pub mod http_server;
pub mod registry;
/// The loop-device and mount guards, the same file the unit tests use.
#[path = "../../src/testutil.rs"]
pub mod testutil;
