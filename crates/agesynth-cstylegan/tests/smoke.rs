//! Smoke test: the tiny preset builds and runs end to end.
use agesynth_core::AgeGroup;
use agesynth_cstylegan::*;
use candle_core::{DType, Device};
use candle_nn::VarMap;

#[test]
fn tiny_generator_and_discriminator_run() {
    let cfg = CStyleGanConfig::tiny();
    let dev = Device::Cpu;
    let (gm, dm) = (VarMap::new(), VarMap::new());
    let g = Generator::new(&cfg, seeded_var_builder(&gm, 1, DType::F32, &dev)).unwrap();
    let d = Discriminator::new(&cfg, seeded_var_builder(&dm, 2, DType::F32, &dev)).unwrap();
    let z = seeded_latents(3, cfg.z_dim, 3, &dev).unwrap();
    let groups = [AgeGroup(0), AgeGroup(3), AgeGroup(5)];
    let img = g.forward(&z, &groups, &GenerateOptions::default()).unwrap();
    assert_eq!(img.dims(), &[3, 3, 16, 16]);
    let logits = d.forward(&img, &groups).unwrap();
    assert_eq!(logits.dims(), &[3]);
}
