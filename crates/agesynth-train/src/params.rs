//! Named parameter sets: snapshot and restore (copying and the EMA live in
//! `agesynth_nn::vars`).

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
