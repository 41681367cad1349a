//! Throughput of the data pipeline (filled in below).
fn main() {}
