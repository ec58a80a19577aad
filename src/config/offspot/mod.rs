//! `offspot:` runtime config (being written).
#[derive(Debug, Clone, PartialEq)]
pub struct Offspot;
