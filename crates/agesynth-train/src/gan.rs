//! What both GAN tasks hold alike: the generator's, its EMA's and the
//! discriminator's variables and the two optimisers, with their checkpoint
//! and restore (one copy of the part names `generator`, `generator_ema`,
//! `discriminator`, `optim_g`, `optim_d`).

use candle_nn::VarMap;

use crate::{
    checkpoint::{Checkpoint, CheckpointContents, CheckpointRestore},
    optim::Adam,
    Result,
};

/// The trainable state of a GAN: variables and optimisers.
pub struct GanState {
    /// The generator's variables.
    pub g_vars: VarMap,
    /// The generator EMA's variables.
    pub ema_vars: VarMap,
    /// The discriminator's variables.
    pub d_vars: VarMap,
    /// The generator's optimiser.
    pub opt_g: Adam,
    /// The discriminator's optimiser.
    pub opt_d: Adam,
}

impl GanState {
    /// The checkpoint parts of the state; a task adds its sidecars and data
    /// order.
    pub fn contents(&self) -> Result<CheckpointContents> {
        CheckpointContents::new()
            .vars("generator", &self.g_vars)
            .vars("generator_ema", &self.ema_vars)
            .vars("discriminator", &self.d_vars)
            .optimizer("optim_g", &self.opt_g)?
            .optimizer("optim_d", &self.opt_d)
    }

    /// Restores what [`GanState::contents`] saved (names and shapes checked).
    /// A checkpoint written before the EMA existed starts it from G.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        ck.restore_vars("generator", &self.g_vars)?;
        ck.restore_vars("discriminator", &self.d_vars)?;
        if ck.tensors_path("generator_ema").is_file() {
            ck.restore_vars("generator_ema", &self.ema_vars)?;
        } else {
            agesynth_nn::vars::copy_vars(&self.ema_vars, &self.g_vars)?;
        }
        ck.restore_optimizer("optim_g", &mut self.opt_g)?;
        ck.restore_optimizer("optim_d", &mut self.opt_d)?;
        Ok(())
    }
}
