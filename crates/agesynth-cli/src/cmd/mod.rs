//! One module per command group.

pub mod age;
pub mod data;
pub mod demo;
pub mod eval;
pub mod serve;
pub mod synth;
pub mod train;
pub mod weights;
