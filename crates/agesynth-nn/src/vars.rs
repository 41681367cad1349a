//! Variable maps shared by the GANs' training code: sorted listing, copying
//! and the exponential moving average (EMA) of a generator's weights.

use agesynth_core::{Error, Result};
use candle_core::Var;
use candle_nn::VarMap;

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
/// Both maps must hold the same names and shapes.
pub fn copy_vars(dst: &VarMap, src: &VarMap) -> Result<()> {
    for (_, d, s) in paired(dst, src)? {
        d.set(&s.as_tensor().detach().copy()?)?;
    }
    Ok(())
}

/// One EMA step: every parameter of `ema` becomes
/// `decay · ema + (1 − decay) · live`; the variables for which `is_buffer`
/// is true (running statistics rather than trained weights) are copied.
/// Both maps must hold the same variables (two models built from the same
/// config).
///
/// StyleGAN2's choice is `decay = 0.5^(batch / (10k images))`, see
/// [`ema_decay`].
pub fn ema_update(
    ema: &VarMap,
    live: &VarMap,
    decay: f64,
    is_buffer: impl Fn(&str) -> bool,
) -> Result<()> {
    if !(0.0..=1.0).contains(&decay) {
        return Err(Error::InvalidInput(format!(
            "EMA decay must be in [0, 1], got {decay}"
        )));
    }
    for (name, e, l) in paired(ema, live)? {
        let lt = l.as_tensor().detach();
        if is_buffer(&name) {
            e.set(&lt.copy()?)?;
        } else {
            crate::ops::ema_update(&e, &lt, decay)?;
        }
    }
    Ok(())
}

/// The EMA decay that halves the old weights' share every
/// `half_life_images` images at `batch` images per step
/// (`0.5^(batch / half_life)`; 0 for a half-life ≤ 0, i.e. no averaging).
pub fn ema_decay(batch: usize, half_life_images: f64) -> f64 {
    if half_life_images <= 0.0 {
        return 0.0;
    }
    0.5f64.powf(batch as f64 / half_life_images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};
    use candle_nn::{Init, VarBuilder};

    fn map(v: f64) -> VarMap {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        vb.get_with_hints(2, "w", Init::Const(v)).unwrap();
        vb.get_with_hints(1, "buf", Init::Const(v)).unwrap();
        vm
    }

    fn get(vm: &VarMap, name: &str) -> Vec<f32> {
        let d = vm.data().lock().unwrap();
        d[name].as_tensor().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn ema_moves_towards_live_and_copies_buffers() {
        let (ema, live) = (map(0.0), map(10.0));
        // decay 0.9: 0.9·0 + 0.1·10 = 1; then 0.9·1 + 0.1·10 = 1.9.
        ema_update(&ema, &live, 0.9, |n| n == "buf").unwrap();
        assert!((get(&ema, "w")[0] - 1.0).abs() < 1e-6);
        assert_eq!(get(&ema, "buf"), vec![10.0]);
        ema_update(&ema, &live, 0.9, |n| n == "buf").unwrap();
        assert!((get(&ema, "w")[1] - 1.9).abs() < 1e-6);
        copy_vars(&ema, &live).unwrap();
        assert_eq!(get(&ema, "w"), vec![10.0, 10.0]);
        assert!(ema_update(&ema, &live, 1.5, |_| false).is_err());
        // 10k images half-life at batch 32: 0.5^(32/10000) ≈ 0.997784.
        assert!((ema_decay(32, 10_000.0) - 0.997_784).abs() < 1e-6);
        assert_eq!(ema_decay(32, 0.0), 0.0);
    }

    #[test]
    fn mismatched_maps_are_errors() {
        let a = map(1.0);
        let b = VarMap::new();
        let vb = VarBuilder::from_varmap(&b, DType::F32, &Device::Cpu);
        vb.get_with_hints(3, "w", Init::Const(0.0)).unwrap();
        vb.get_with_hints(1, "buf", Init::Const(0.0)).unwrap();
        let msg = copy_vars(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("`w`"), "{msg}");
        let _ = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    }
}
