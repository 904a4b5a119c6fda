//! bt86 device models (stub; being written).
