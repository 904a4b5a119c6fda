//! Oracle test (being written).
