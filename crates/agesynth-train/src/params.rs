//! Named parameter sets: snapshot, restore, and the exponential moving
//! average (EMA) of a model's weights.

use std::{collections::HashMap, path::Path};

use candle_core::Tensor;
use candle_nn::VarMap;

use crate::{Result, TrainError};

/// A copy of every variable of `varmap`, by name (detached tensors).
pub fn snapshot(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect()
}

/// Sets every variable of `varmap` from `tensors` (moved to each variable's
/// device and dtype). Every variable must be present with its shape and no
/// tensor may be left over; `source` names the file in errors. Nothing
/// changes unless everything matches.
pub fn restore(varmap: &VarMap, mut tensors: HashMap<String, Tensor>, source: &Path) -> Result<()> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut updates = Vec::with_capacity(names.len());
    for name in names {
        let var = &data[name];
        let t = agesynth_core::io::take_tensor(&mut tensors, source, name, var.dims())?;
        updates.push((var, t.to_device(var.device())?.to_dtype(var.dtype())?));
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(TrainError::checkpoint(
            source,
            format!("tensor `{extra}` belongs to no variable of this model"),
        ));
    }
    for (var, t) in updates {
        var.set(&t)?;
    }
    Ok(())
}

/// Copies every variable of `src` into the variable of the same name in
/// `dst` (the two maps must hold the same names and shapes).
pub fn copy_into(dst: &VarMap, src: &VarMap) -> Result<()> {
    restore(dst, snapshot(src), Path::new("<model in memory>"))
}

/// One EMA update: `dst ← β·dst + (1 − β)·src` for every variable, matched by
/// name. A variable of `src` missing from `dst` is an error.
pub fn ema_update(dst: &VarMap, src: &VarMap, beta: f64) -> Result<()> {
    let d = dst.data().lock().unwrap_or_else(|p| p.into_inner());
    let s = src.data().lock().unwrap_or_else(|p| p.into_inner());
    for (name, sv) in s.iter() {
        let dv = d.get(name).ok_or_else(|| {
            agesynth_core::Error::InvalidInput(format!("EMA copy lacks variable `{name}`"))
        })?;
        let next = ((dv.as_tensor() * beta)? + (sv.as_tensor().detach() * (1.0 - beta))?)?;
        dv.set(&next)?;
    }
    Ok(())
}

/// The EMA decay that halves the weight of a sample after
/// `half_life_images` images at `batch` images per step (StyleGAN2's
/// `ema_kimg`: β = 0.5^(batch / half_life)).
pub fn ema_beta(batch: usize, half_life_images: f64) -> f64 {
    if half_life_images <= 0.0 {
        return 0.0;
    }
    0.5f64.powf(batch as f64 / half_life_images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::{Init, VarBuilder};

    fn map(v: f32) -> VarMap {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        vb.get_with_hints(2, "w", Init::Const(v as f64)).unwrap();
        vm
    }

    fn w(vm: &VarMap) -> Vec<f32> {
        snapshot(vm)["w"].to_vec1::<f32>().unwrap()
    }

    #[test]
    fn ema_moves_towards_source() {
        let (ema, src) = (map(0.0), map(10.0));
        // β = 0.9: 0.9·0 + 0.1·10 = 1; then 0.9·1 + 0.1·10 = 1.9.
        ema_update(&ema, &src, 0.9).unwrap();
        assert!((w(&ema)[0] - 1.0).abs() < 1e-6);
        ema_update(&ema, &src, 0.9).unwrap();
        assert!((w(&ema)[1] - 1.9).abs() < 1e-6);
        copy_into(&ema, &src).unwrap();
        assert_eq!(w(&ema), vec![10.0, 10.0]);
        // 10k images half-life at batch 32: 0.5^(32/10000) ≈ 0.997784.
        assert!((ema_beta(32, 10_000.0) - 0.997_784).abs() < 1e-6);
    }

    #[test]
    fn restore_checks_names_and_shapes() {
        let vm = map(1.0);
        let bad = HashMap::from([(
            "w".to_string(),
            Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        )]);
        let msg = restore(&vm, bad, Path::new("x.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("x.safetensors") && msg.contains('w'), "{msg}");
        assert_eq!(w(&vm), vec![1.0, 1.0]);
        let extra = HashMap::from([
            (
                "w".to_string(),
                Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
            ),
            (
                "v".to_string(),
                Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
            ),
        ]);
        assert!(restore(&vm, extra, Path::new("x")).is_err());
    }
}
