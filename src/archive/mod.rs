//! archive (being written).
