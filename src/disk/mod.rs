//! disk (being written).
