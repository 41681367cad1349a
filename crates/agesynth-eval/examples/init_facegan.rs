//! Writes a freshly initialised FaceGAN generator with its config sidecar,
//! loadable by `agesynth eval --model`: for timing the evaluation (its cost
//! does not depend on the weights) before trained weights exist.
//!
//! `cargo run -p agesynth-eval --example init_facegan -- OUT.safetensors [PRESET=cpu64] [SEED=0]`

use agesynth_core::candle_core::{DType, Device};
use agesynth_facegan::{seeded_var_builder, FaceGanConfig, Generator};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or_else(|| anyhow::anyhow!("usage: init_facegan OUT.safetensors [PRESET] [SEED]"))?;
    let cfg = FaceGanConfig::preset(args.get(1).map(String::as_str).unwrap_or("cpu64"))?;
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let vars = candle_nn::VarMap::new();
    Generator::new(
        &cfg,
        seeded_var_builder(&vars, seed, DType::F32, &Device::Cpu),
    )?;
    agesynth_core::io::save_varmap(&vars, out, &cfg)?;
    eprintln!("{} generator (seed {seed}): {out}", cfg.preset);
    Ok(())
}
