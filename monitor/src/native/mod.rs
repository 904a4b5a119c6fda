//! Native compatibility-mode execution (being written).
