//! build (being written).
