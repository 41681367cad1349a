//! Reproducible initialisation: the seeded `VarBuilder` shared by our GANs
//! lives in [`agesynth_nn::init`]; this crate re-exports it.

pub use agesynth_nn::init::seeded_var_builder;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaceGanConfig, Generator};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn same_seed_same_weights() {
        let cfg = FaceGanConfig::tiny();
        let snap = |seed| {
            let vm = VarMap::new();
            Generator::new(
                &cfg,
                seeded_var_builder(&vm, seed, DType::F32, &Device::Cpu),
            )
            .unwrap();
            let data = vm.data().lock().unwrap();
            let mut v: Vec<(String, Vec<f32>)> = data
                .iter()
                .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let (a, b, c) = (snap(1), snap(1), snap(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Kaiming-normal conv weights: std ≈ √2/√fan_in (stem: fan_in 9·9).
        let w = &a.iter().find(|(k, _)| k == "stem.weight").unwrap().1;
        let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        let want = (2.0f32).sqrt() / 81f32.sqrt();
        assert!((std / want - 1.0).abs() < 0.2, "std {std} vs {want}");
    }
}
