//! Loading shipped or checkpointed critics: the crate's one place that reads
//! files (the models themselves do no I/O).

use std::path::Path;

use agesynth_core::{checkpoint::load_model, Result};
use candle_core::Device;
use candle_nn::VarMap;

use crate::{AgeCritic, GenderCritic, IdentityCritic};

/// Loads an age critic: a weights file with its config sidecar, a
/// checkpoint folder or a run folder (its newest intact checkpoint).
pub fn load_age_critic(path: &Path, device: &Device) -> Result<(AgeCritic, VarMap)> {
    load_model(path, &["critic"], "CriticConfig", device, AgeCritic::new)
}

/// Loads an identity critic (same forms as [`load_age_critic`]).
pub fn load_identity_critic(path: &Path, device: &Device) -> Result<(IdentityCritic, VarMap)> {
    load_model(
        path,
        &["critic"],
        "CriticConfig",
        device,
        IdentityCritic::new,
    )
}

/// Loads a gender critic (same forms as [`load_age_critic`]).
pub fn load_gender_critic(path: &Path, device: &Device) -> Result<(GenderCritic, VarMap)> {
    load_model(path, &["critic"], "CriticConfig", device, GenderCritic::new)
}
