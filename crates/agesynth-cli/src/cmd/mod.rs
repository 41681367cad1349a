//! One module per command group.

pub mod data;
pub mod synth;
pub mod train;
pub mod weights;
