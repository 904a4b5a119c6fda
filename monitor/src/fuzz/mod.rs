//! Fuzzer (being written).
