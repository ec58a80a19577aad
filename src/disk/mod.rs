//! disk (being written).

pub mod ext4;
