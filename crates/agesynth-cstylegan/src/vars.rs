//! Variable maps: reproducible initialisation, parameter listing and counting,
//! and the exponential moving average (EMA) of a generator's weights.

use agesynth_core::{Error, Result};
use candle_core::Var;
use candle_nn::VarMap;

use crate::generator::GENERATOR_BUFFERS;

pub use agesynth_nn::init::seeded_var_builder;

/// `(name, var)` pairs of a map, sorted by name.
pub fn sorted_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidInput("the variable map's lock is poisoned".into()))?;
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

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

/// Pairs each variable of `dst` with the same-named one of `src`, checking
/// that both maps hold the same names and shapes.
fn paired(dst: &VarMap, src: &VarMap) -> Result<Vec<(String, Var, Var)>> {
    let d = sorted_vars(dst)?;
    let s = sorted_vars(src)?;
    if d.len() != s.len() {
        return Err(Error::InvalidInput(format!(
            "variable maps differ: {} variables against {}",
            d.len(),
            s.len()
        )));
    }
    d.into_iter()
        .zip(s)
        .map(|((dn, dv), (sn, sv))| {
            if dn != sn || dv.shape() != sv.shape() {
                return Err(Error::InvalidInput(format!(
                    "variable maps differ: `{dn}` {:?} against `{sn}` {:?}",
                    dv.dims(),
                    sv.dims()
                )));
            }
            Ok((dn, dv, sv))
        })
        .collect()
}

/// Copies every variable of `src` into the same-named variable of `dst`.
pub fn copy_vars(dst: &VarMap, src: &VarMap) -> Result<()> {
    for (_, d, s) in paired(dst, src)? {
        d.set(&s.as_tensor().detach().copy()?)?;
    }
    Ok(())
}

/// One EMA step: every parameter of `ema` becomes
/// `decay · ema + (1 − decay) · live`; buffers (the running mean `w`) are
/// copied. Both maps must hold the same variables (two generators built from
/// the same config).
///
/// StyleGAN2's choice is `decay = 0.5^(batch / (10k images))`, see
/// [`ema_decay`].
pub fn ema_update(ema: &VarMap, live: &VarMap, decay: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&decay) {
        return Err(Error::InvalidInput(format!(
            "EMA decay must be in [0, 1], got {decay}"
        )));
    }
    for (name, e, l) in paired(ema, live)? {
        let lt = l.as_tensor().detach();
        let new = if is_buffer(&name) {
            lt.copy()?
        } else {
            ((e.as_tensor().detach() * decay)? + (lt * (1.0 - decay))?)?
        };
        e.set(&new)?;
    }
    Ok(())
}

/// The EMA decay that halves the old weights' share every
/// `half_life_images` images at `batch` images per step.
pub fn ema_decay(batch: usize, half_life_images: f64) -> f64 {
    0.5f64.powf(batch as f64 / half_life_images.max(1e-8))
}
