//! Host process facilities: signals (being written).
