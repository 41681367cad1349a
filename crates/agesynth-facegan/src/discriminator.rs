//! The FaceGAN discriminator: a PatchGAN conditioned on the age group by
//! projection (Miyato & Koyama 2018), with an optional auxiliary
//! age-classification head.
//!
//! ```text
//! x (N,3,S,S)
//!   down[i]  4×4 stride-2 conv, leaky ReLU 0.2     → h (N,C,S/2^L,S/2^L)
//!   out      3×3 conv, leaky                       → f (N,C,p,p)
//!   logits = patch(f) + ⟨embed(group), f⟩           (N,1,p,p)
//!   aux    = classes(mean over space of f)          (N,G)   (optional)
//! ```
//! Each logit judges one receptive field (a patch) as a real face of the
//! claimed group; the projection term makes the judgement depend on the
//! group without feeding the group into the convolutions.

use agesynth_core::{AgeBins, AgeGroup, ConditionalDiscriminator, Error, Result};
use agesynth_nn::{Activation, Conv2d, Conv2dConfig};
use candle_core::{Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use crate::config::FaceGanConfig;

/// The projection-conditioned PatchGAN discriminator of FaceGAN.
#[derive(Clone, Debug)]
pub struct Discriminator {
    cfg: FaceGanConfig,
    bins: AgeBins,
    down: Vec<Conv2d>,
    out: Conv2d,
    patch: Conv2d,
    embed: Embedding,
    classes: Option<Linear>,
}

/// What one pass of the [`Discriminator`] gives: per-patch realness logits
/// `(N, 1, p, p)` and the auxiliary head's age-group logits, if the config
/// has it (the shared type of `agesynth-core`).
pub use agesynth_core::DiscriminatorOutput;

impl Discriminator {
    /// Builds the discriminator, reading or initialising its weights from
    /// `vb` (names: `down.i`, `out`, `patch`, `embed`, `classes`).
    pub fn new(cfg: &FaceGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let bins = cfg.bins()?;
        let mut down = Vec::new();
        let mut cin = 3;
        for (i, &c) in cfg.d_channels.iter().enumerate() {
            let conv_cfg = Conv2dConfig {
                padding: 1,
                stride: 2,
                activation: Activation::LeakyRelu(0.2),
                ..Conv2dConfig::new(cin, c, 4)
            };
            down.push(Conv2d::new(&conv_cfg, vb.pp(format!("down.{i}")))?);
            cin = c;
        }
        let out_cfg = Conv2dConfig {
            padding: 1,
            activation: Activation::LeakyRelu(0.2),
            ..Conv2dConfig::new(cin, cin, 3)
        };
        let out = Conv2d::new(&out_cfg, vb.pp("out"))?;
        let patch = Conv2d::new(&Conv2dConfig::new(cin, 1, 1), vb.pp("patch"))?;
        let embed = candle_nn::embedding(bins.len(), cin, vb.pp("embed"))?;
        let classes = if cfg.d_aux_classifier {
            Some(candle_nn::linear(cin, bins.len(), vb.pp("classes"))?)
        } else {
            None
        };
        Ok(Discriminator {
            cfg: cfg.clone(),
            bins,
            down,
            out,
            patch,
            embed,
            classes,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FaceGanConfig {
        &self.cfg
    }

    /// Patch logits of `images` as faces of `groups`, and the auxiliary
    /// head's group logits.
    pub fn forward(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<DiscriminatorOutput> {
        let n = self.check(images, groups)?;
        let mut h = images.clone();
        for d in &self.down {
            h = d.forward(&h)?;
        }
        let f = self.out.forward(&h)?;
        let c = f.dim(1)?;
        let idx = self.bins.index_tensor(groups, images.device())?;
        let e = self
            .embed
            .forward(&idx)?
            .to_dtype(f.dtype())?
            .reshape((n, c, 1, 1))?;
        let proj = f.broadcast_mul(&e)?.sum_keepdim(1)?; // (N,1,p,p)
        let logits = (self.patch.forward(&f)? + proj)?;
        let class_logits = match &self.classes {
            Some(head) => Some(head.forward(&f.mean((2, 3))?)?),
            None => None,
        };
        Ok(DiscriminatorOutput {
            logits,
            class_logits,
        })
    }

    /// Checks `images (N, 3, S, S)` against one group each; returns N.
    fn check(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<usize> {
        let s = self.cfg.image_size;
        match images.dims() {
            &[n, 3, h, w] if h == s && w == s && n == groups.len() => Ok(n),
            d => Err(Error::InvalidInput(format!(
                "the FaceGAN discriminator takes images (N, 3, {s}, {s}) with one group each; got {d:?} and {} groups",
                groups.len()
            ))),
        }
    }

    /// The logits and their directional derivative along `tangent` (same
    /// shape as `images`) by forward-mode differentiation, both
    /// differentiable with respect to the weights: what
    /// `agesynth_losses::r1_penalty` needs for an exact R1 gradient (candle
    /// has no double backward). The auxiliary head is not evaluated.
    pub fn forward_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        let n = self.check(images, groups)?;
        if tangent.dims() != images.dims() {
            return Err(Error::InvalidInput(format!(
                "tangent shape {:?} differs from the images' {:?}",
                tangent.dims(),
                images.dims()
            )));
        }
        let (mut h, mut t) = (images.clone(), tangent.clone());
        for d in &self.down {
            (h, t) = d.forward_jvp(&h, &t)?;
        }
        let (f, tf) = self.out.forward_jvp(&h, &t)?;
        let c = f.dim(1)?;
        let idx = self.bins.index_tensor(groups, images.device())?;
        let e = self
            .embed
            .forward(&idx)?
            .to_dtype(f.dtype())?
            .reshape((n, c, 1, 1))?;
        let (p, tp) = self.patch.forward_jvp(&f, &tf)?;
        let logits = (p + f.broadcast_mul(&e)?.sum_keepdim(1)?)?;
        let tlogits = (tp + tf.broadcast_mul(&e)?.sum_keepdim(1)?)?;
        Ok((logits, tlogits))
    }

    /// The auxiliary head's group logits alone (`None` without the head).
    pub fn classify(&self, images: &Tensor) -> Result<Option<Tensor>> {
        // The head does not look at the claimed group: any group will do.
        let groups = vec![AgeGroup(0); images.dim(0)?];
        Ok(self.forward(images, &groups)?.class_logits)
    }
}

impl ConditionalDiscriminator for Discriminator {
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        Ok(self.forward(images, groups)?.logits)
    }

    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }

    fn judge(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<DiscriminatorOutput> {
        self.forward(images, groups)
    }

    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        self.forward_jvp(images, tangent, groups)
    }
}
