//! Variable maps: reproducible initialisation, parameter listing and counting,
//! and the exponential moving average (EMA) of a generator's weights.

use agesynth_core::Result;
use candle_core::Var;
use candle_nn::VarMap;

use crate::generator::GENERATOR_BUFFERS;

pub use agesynth_nn::init::seeded_var_builder;
pub use agesynth_nn::vars::{copy_vars, ema_decay, sorted_vars};

/// True for variables that are buffers rather than trained parameters (the
/// generator's `w_avg`, under any prefix).
pub fn is_buffer(name: &str) -> bool {
    GENERATOR_BUFFERS
        .iter()
        .any(|b| name == *b || name.ends_with(&format!(".{b}")))
}

/// The trainable parameters of a map (buffers excluded), sorted by name:
/// what to hand the optimiser.
pub fn trainable_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    Ok(sorted_vars(varmap)?
        .into_iter()
        .filter(|(k, _)| !is_buffer(k))
        .collect())
}

/// Number of trainable scalars in a map (buffers excluded).
pub fn param_count(varmap: &VarMap) -> Result<usize> {
    Ok(trainable_vars(varmap)?
        .iter()
        .map(|(_, v)| v.elem_count())
        .sum())
}

/// One EMA step: every parameter of `ema` becomes
/// `decay · ema + (1 − decay) · live`; buffers (the running mean `w`) are
/// copied. Both maps must hold the same variables (two generators built from
/// the same config).
///
/// StyleGAN2's choice is `decay = 0.5^(batch / (10k images))`, see
/// [`ema_decay`].
pub fn ema_update(ema: &VarMap, live: &VarMap, decay: f64) -> Result<()> {
    agesynth_nn::vars::ema_update(ema, live, decay, is_buffer)
}
