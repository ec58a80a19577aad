//! Command-line definitions (being written).
