//! Loading a shipped or checkpointed FaceGAN generator: the crate's one
//! place that reads files (the models themselves do no I/O).

use std::path::Path;

use agesynth_core::{checkpoint::load_model, Result};
use candle_core::Device;
use candle_nn::VarMap;

use crate::{FaceGanConfig, Generator};

/// Loads a FaceGAN generator: `path` is a weights file with its config
/// sidecar (`PATH.json`, as the trainer's exports and checkpoints write), a
/// checkpoint folder, or a run folder (its newest intact checkpoint). In a
/// folder the EMA generator is preferred to the live one. The model's
/// variables come from the file only (see
/// [`agesynth_core::checkpoint::load_model`]).
pub fn load_generator(path: &Path, device: &Device) -> Result<(Generator, VarMap)> {
    load_model(
        path,
        &["generator_ema", "generator"],
        "FaceGanConfig",
        device,
        |cfg: &FaceGanConfig, vb| Generator::new(cfg, vb),
    )
}
