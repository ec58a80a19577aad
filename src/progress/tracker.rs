//! Pure progress tracker (being written).
pub struct Tracker;
pub struct Snapshot;
pub struct TaskState;
