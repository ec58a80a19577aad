//! TEMP STUB (config helper) – replaced by the offspot helper's module at merge.
use super::node::{Mark, Node};
#[derive(Debug, Clone, PartialEq)]
pub struct Offspot;
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OffspotError {
    pub path: String,
    pub mark: Mark,
    pub message: String,
}
impl Offspot {
    pub fn from_node(_node: &Node) -> Result<Offspot, OffspotError> {
        Ok(Offspot)
    }
}
