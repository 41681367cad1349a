//! Criterion bench of a full cStyleGAN training step (placeholder until filled in).
fn main() {}
