//! bt86 guest test kernels (being written).
