//! The volume backend driver interface (being written).
