//! The bt86 binary translator (being written).
