//! Renderers (being written).
pub struct Terminal;
pub struct JsonLines;
