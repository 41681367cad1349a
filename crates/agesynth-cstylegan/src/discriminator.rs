//! The discriminator: residual, minibatch-stddev, projection-conditioned on
//! the age group.

use std::f64::consts::FRAC_1_SQRT_2;

use agesynth_core::{
    AgeBins, AgeGroup, ConditionalDiscriminator, Error, Gender, RealismCritic, Result,
};
use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use crate::config::CStyleGanConfig;
use crate::layers::{downsample2x, EqualConv2d, EqualLinear};

/// A residual down block: `conv0` (3×3 at the input resolution), 2×2
/// average pooling, `conv1` (3×3 at half resolution), and a skip path of
/// pooling and a 1×1 convolution without bias; the sum is scaled by `1/√2`.
#[derive(Debug, Clone)]
struct DBlock {
    conv0: EqualConv2d,
    conv1: EqualConv2d,
    skip: EqualConv2d,
}

impl DBlock {
    fn new(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv0: EqualConv2d::new(cin, cin, 3, true, true, vb.pp("conv0"))?,
            conv1: EqualConv2d::new(cin, cout, 3, true, true, vb.pp("conv1"))?,
            skip: EqualConv2d::new(cin, cout, 1, false, false, vb.pp("skip"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self
            .conv1
            .forward(&downsample2x(&self.conv0.forward(x)?)?)?;
        let s = self.skip.forward(&downsample2x(x)?)?;
        Ok(((y + s)? * FRAC_1_SQRT_2)?)
    }

    fn forward_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let (y, ty) = self.conv0.forward_jvp(x, t)?;
        let (y, ty) = self
            .conv1
            .forward_jvp(&downsample2x(&y)?, &downsample2x(&ty)?)?;
        let (s, ts) = self
            .skip
            .forward_jvp(&downsample2x(x)?, &downsample2x(t)?)?;
        Ok((((y + s)? * FRAC_1_SQRT_2)?, ((ty + ts)? * FRAC_1_SQRT_2)?))
    }
}

/// The cStyleGAN discriminator. From RGB (1×1 conv) at full resolution,
/// residual blocks down to 4×4, minibatch standard deviation, a 3×3 conv, a
/// fully connected layer to features `φ(x)` of width `C₄`, and the logit
/// `ψ(φ(x)) + ⟨e_c, φ(x)⟩/√C₄` with a learned embedding `e_c` of the claimed
/// condition (projection discriminator, Miyato & Koyama 2018): the age
/// group, or for a gender-conditioned model the gender and age group (row
/// `gender · groups + group`, male 0, female 1).
///
/// Weights `from_rgb.*`, `blocks.{i}.{conv0,conv1,skip}.*` (block `i` takes
/// level `levels-1-i` to the one below), `final_conv.*`, `final_fc.*`,
/// `out.*`, `age_embed (conditions, C₄)`.
#[derive(Debug, Clone)]
pub struct Discriminator {
    cfg: CStyleGanConfig,
    bins: AgeBins,
    from_rgb: EqualConv2d,
    blocks: Vec<DBlock>,
    final_conv: EqualConv2d,
    final_fc: EqualLinear,
    out: EqualLinear,
    age_embed: Tensor,
}

impl Discriminator {
    /// Builds the discriminator of `cfg` from `vb`.
    pub fn new(cfg: &CStyleGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let ch = &cfg.d_channels;
        let top = cfg.levels() - 1;
        let from_rgb = EqualConv2d::new(3, ch[top], 1, true, true, vb.pp("from_rgb"))?;
        let vbb = vb.pp("blocks");
        let blocks = (0..top)
            .map(|i| {
                let level = top - i;
                DBlock::new(ch[level], ch[level - 1], vbb.pp(i))
            })
            .collect::<Result<Vec<_>>>()?;
        let c4 = ch[0];
        let final_conv = EqualConv2d::new(
            c4 + cfg.mbstd_features,
            c4,
            3,
            true,
            true,
            vb.pp("final_conv"),
        )?;
        let final_fc = EqualLinear::new(c4 * 16, c4, Some(0.0), 1.0, true, vb.pp("final_fc"))?;
        let out = EqualLinear::new(c4, 1, Some(0.0), 1.0, false, vb.pp("out"))?;
        let age_embed = vb.get_with_hints(
            (cfg.num_conditions(), c4),
            "age_embed",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            bins: cfg.bins()?,
            from_rgb,
            blocks,
            final_conv,
            final_fc,
            out,
            age_embed,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CStyleGanConfig {
        &self.cfg
    }

    /// Minibatch standard deviation (StyleGAN2): within groups of `G` images,
    /// the standard deviation of every feature, averaged over channels (split
    /// in `F` parts) and positions, appended as `F` constant planes.
    fn minibatch_stddev(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let g = (1..=self.cfg.mbstd_group.min(n))
            .rev()
            .find(|g| n % g == 0)
            .unwrap_or(1);
        let f = self.cfg.mbstd_features;
        let m = n / g;
        let y = x.reshape((g, m, f, c / f, h, w))?;
        let y = y.broadcast_sub(&y.mean_keepdim(0)?)?;
        let y = (y.sqr()?.mean(0)? + 1e-8)?.sqrt()?; // (m, f, c/f, h, w)
        let y = y.mean((2, 3, 4))?; // (m, f)
        let y = y
            .reshape((1, m, f, 1, 1))?
            .broadcast_as((g, m, f, h, w))?
            .reshape((n, f, h, w))?;
        Ok(Tensor::cat(&[x, &y], 1)?)
    }

    /// The group size actually used for a batch of `n`.
    fn mbstd_group_for(&self, n: usize) -> usize {
        (1..=self.cfg.mbstd_group.min(n))
            .rev()
            .find(|g| n.is_multiple_of(*g))
            .unwrap_or(1)
    }

    /// [`Self::minibatch_stddev`] with its tangent along `t`: for
    /// `σ = √(mean_g (x − x̄)² + ε)`, `dσ = mean_g((x − x̄)(t − t̄)) / σ`.
    fn minibatch_stddev_jvp(&self, x: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, c, h, w) = x.dims4()?;
        let g = self.mbstd_group_for(n);
        let f = self.cfg.mbstd_features;
        let m = n / g;
        let shape = (g, m, f, c / f, h, w);
        let y = x.reshape(shape)?;
        let ty = t.reshape(shape)?;
        let cy = y.broadcast_sub(&y.mean_keepdim(0)?)?;
        let cty = ty.broadcast_sub(&ty.mean_keepdim(0)?)?;
        let sd = (cy.sqr()?.mean(0)? + 1e-8)?.sqrt()?; // (m, f, c/f, h, w)
        let tsd = ((cy * cty)?.mean(0)? / &sd)?;
        let spread = |v: Tensor| -> Result<Tensor> {
            Ok(v.mean((2, 3, 4))?
                .reshape((1, m, f, 1, 1))?
                .broadcast_as((g, m, f, h, w))?
                .reshape((n, f, h, w))?)
        };
        Ok((
            Tensor::cat(&[x, &spread(sd)?], 1)?,
            Tensor::cat(&[t, &spread(tsd)?], 1)?,
        ))
    }

    /// Logits and their directional derivative along `tangent` (same shape as
    /// `images`): forward-mode differentiation through the whole network,
    /// both results differentiable with respect to the weights. This is what
    /// the R1 penalty backpropagates (`agesynth_losses::r1_penalty`), since
    /// candle has no double-backward.
    pub fn forward_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        self.forward_jvp_given(images, tangent, groups, None)
    }

    /// The condition rows of `groups` (and, for a gender-conditioned model,
    /// `genders`, which it needs) as a `(N,)` u32 tensor.
    fn condition_idx(
        &self,
        groups: &[AgeGroup],
        genders: Option<&[Gender]>,
        device: &candle_core::Device,
    ) -> Result<Tensor> {
        let idx = self.bins.index_tensor(groups, device)?;
        match (self.cfg.gender_conditioned, genders) {
            (false, None) => Ok(idx),
            (false, Some(_)) => Err(Error::InvalidInput(
                "this discriminator is not conditioned on gender".into(),
            )),
            (true, None) => Err(Error::InvalidInput(
                "a gender-conditioned discriminator needs each image's gender".into(),
            )),
            (true, Some(s)) => {
                if s.len() != groups.len() {
                    return Err(Error::InvalidInput(format!(
                        "{} age groups but {} genders",
                        groups.len(),
                        s.len()
                    )));
                }
                let g = self.bins.len();
                let rows: Vec<u32> = s
                    .iter()
                    .zip(groups)
                    .map(|(&x, a)| (crate::generator::gender_index(x) * g + a.0) as u32)
                    .collect();
                Ok(Tensor::from_vec(rows, groups.len(), device)?)
            }
        }
    }

    /// [`Self::forward_jvp`] of images claimed to show `groups` and, for a
    /// gender-conditioned model, `genders`.
    pub fn forward_jvp_given(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
        genders: Option<&[Gender]>,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.check_images(images, groups)?;
        if tangent.dims() != images.dims() {
            return Err(Error::InvalidInput(format!(
                "tangent shape {:?} differs from the images' {:?}",
                tangent.dims(),
                images.dims()
            )));
        }
        let idx = self.condition_idx(groups, genders, images.device())?;
        let e = self.age_embed.index_select(&idx, 0)?;
        self.forward_jvp_embedded(images, tangent, &e, n)
    }

    /// [`Self::forward_jvp_given`] against condition embeddings `e (N, C)`.
    fn forward_jvp_embedded(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        e: &Tensor,
        n: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (mut x, mut t) = self.from_rgb.forward_jvp(images, tangent)?;
        for b in &self.blocks {
            (x, t) = b.forward_jvp(&x, &t)?;
        }
        let (x, t) = self.minibatch_stddev_jvp(&x, &t)?;
        let (x, t) = self.final_conv.forward_jvp(&x, &t)?;
        let (phi, tphi) = self
            .final_fc
            .forward_jvp(&x.flatten_from(1)?, &t.flatten_from(1)?)?;
        let c4 = phi.dim(1)?;
        let e = e.to_dtype(phi.dtype())?;
        let norm = (c4 as f64).sqrt();
        let proj = ((&e * &phi)?.sum(1)? / norm)?;
        let tproj = ((e * &tphi)?.sum(1)? / norm)?;
        let (logit, tlogit) = self.out.forward_jvp(&phi, &tphi)?;
        Ok(((logit.reshape(n)? + proj)?, (tlogit.reshape(n)? + tproj)?))
    }

    fn check_images(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<usize> {
        let (n, c, h, w) = images.dims4()?;
        let s = self.cfg.image_size;
        if c != 3 || h != s || w != s {
            return Err(Error::InvalidInput(format!(
                "the discriminator expects (N, 3, {s}, {s}) images, got {:?}",
                images.dims()
            )));
        }
        if groups.len() != n {
            return Err(Error::InvalidInput(format!(
                "{n} images but {} age groups",
                groups.len()
            )));
        }
        Ok(n)
    }

    /// Logits `(N,)` of `images (N, 3, S, S)` claimed to show condition rows
    /// `group_idx (N,)` (u32): the age groups, or `gender · groups + group`
    /// for a gender-conditioned model.
    pub fn forward_idx(&self, images: &Tensor, group_idx: &Tensor) -> Result<Tensor> {
        let e = self.age_embed.index_select(group_idx, 0)?;
        self.forward_embedded(images, &e)
    }

    /// Logits `(N,)` of `images` against condition embeddings `e (N, C)`
    /// (rows of the age embedding, or blends of them).
    fn forward_embedded(&self, images: &Tensor, e: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = images.dims4()?;
        let s = self.cfg.image_size;
        if c != 3 || h != s || w != s {
            return Err(Error::InvalidInput(format!(
                "the discriminator expects (N, 3, {s}, {s}) images, got {:?}",
                images.dims()
            )));
        }
        let mut x = self.from_rgb.forward(images)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        let x = self.final_conv.forward(&self.minibatch_stddev(&x)?)?;
        let phi = self.final_fc.forward(&x.flatten_from(1)?)?; // (N, C4)
        let c4 = phi.dim(1)?;
        let proj = ((e.to_dtype(phi.dtype())? * &phi)?.sum(1)? / (c4 as f64).sqrt())?;
        let logit = self.out.forward(&phi)?.reshape(n)?;
        Ok((logit + proj)?)
    }

    /// Logits `(N,)` of `images (N, 3, S, S)` claimed to show `groups` (a
    /// model without gender).
    pub fn forward(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        self.forward_given(images, groups, None)
    }

    /// Logits `(N,)` of `images` claimed to show `groups` and, for a
    /// gender-conditioned model, `genders`.
    pub fn forward_given(
        &self,
        images: &Tensor,
        groups: &[AgeGroup],
        genders: Option<&[Gender]>,
    ) -> Result<Tensor> {
        self.check_images(images, groups)?;
        let idx = self.condition_idx(groups, genders, images.device())?;
        self.forward_idx(images, &idx)
    }

    /// This discriminator with the images' genders fixed: a
    /// [`ConditionalDiscriminator`] over age groups (what the R1 penalty
    /// takes) for a gender-conditioned model.
    pub fn given_genders<'a>(&'a self, genders: &'a [Gender]) -> GivenGenders<'a> {
        GivenGenders { d: self, genders }
    }
}

/// A gender-conditioned [`Discriminator`] with the genders of the images it
/// will judge fixed ([`Discriminator::given_genders`]).
#[derive(Debug, Clone, Copy)]
pub struct GivenGenders<'a> {
    d: &'a Discriminator,
    genders: &'a [Gender],
}

impl ConditionalDiscriminator for GivenGenders<'_> {
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        self.d.forward_given(images, groups, Some(self.genders))
    }

    fn age_bins(&self) -> &AgeBins {
        &self.d.bins
    }

    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        self.d
            .forward_jvp_given(images, tangent, groups, Some(self.genders))
    }
}

/// The discriminator as a frozen realism critic: the logit that a face is a
/// real photo of its group (and gender). For a gender-conditioned model a
/// row whose gender is unknown is judged against the mean of the two
/// genders' condition embeddings (the mean of the two logits); a model
/// without gender ignores the genders.
impl RealismCritic for Discriminator {
    fn realism_logits(
        &self,
        images: &Tensor,
        groups: &[AgeGroup],
        genders: &[Option<Gender>],
    ) -> Result<Tensor> {
        let n = self.check_images(images, groups)?;
        if !self.cfg.gender_conditioned {
            return self.forward(images, groups);
        }
        if genders.len() != n {
            return Err(Error::InvalidInput(format!(
                "{n} images but {} genders",
                genders.len()
            )));
        }
        let e = self.condition_embed(groups, genders, images.device())?;
        self.forward_embedded(images, &e)
    }

    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }
}

impl Discriminator {
    /// The condition embedding `(N, C)` of each row of a gender-conditioned
    /// model: its (gender, group) row where the gender is known, the mean of
    /// the two genders' rows of its group where it is not.
    fn condition_embed(
        &self,
        groups: &[AgeGroup],
        genders: &[Option<Gender>],
        dev: &candle_core::Device,
    ) -> Result<Tensor> {
        let n = groups.len();
        let g = self.bins.len();
        // Checks the groups against the bins.
        self.bins.index_tensor(groups, dev)?;
        // Rows (male, female) of each image's group, and each image's
        // weights on them: 1/0 or 0/1 when known, ½/½ when not.
        let rows = |gender: Gender| -> Result<Tensor> {
            let idx: Vec<u32> = groups
                .iter()
                .map(|a| (crate::generator::gender_index(gender) * g + a.0) as u32)
                .collect();
            Ok(self
                .age_embed
                .index_select(&Tensor::from_vec(idx, n, dev)?, 0)?)
        };
        let (male, female) = (rows(Gender::Male)?, rows(Gender::Female)?);
        let wf: Vec<f32> = genders
            .iter()
            .map(|x| match x {
                Some(Gender::Female) => 1.0,
                Some(Gender::Male) => 0.0,
                None => 0.5,
            })
            .collect();
        let wf = Tensor::from_vec(wf, (n, 1), dev)?.to_dtype(male.dtype())?;
        Ok((male.broadcast_mul(&(1.0 - &wf)?)? + female.broadcast_mul(&wf)?)?)
    }
}

/// Over age groups alone. A gender-conditioned model judges every image
/// with its gender unknown (the mean of the two genders' condition
/// embeddings), as [`RealismCritic::realism_logits`] does for `None`: a
/// trainer that knows no genders (FaceGAN's D step) can still use it; one
/// that does uses [`Discriminator::given_genders`].
impl ConditionalDiscriminator for Discriminator {
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        if self.cfg.gender_conditioned {
            return self.realism_logits(images, groups, &vec![None; groups.len()]);
        }
        self.forward(images, groups)
    }

    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }

    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        if self.cfg.gender_conditioned {
            let n = self.check_images(images, groups)?;
            if tangent.dims() != images.dims() {
                return Err(Error::InvalidInput(format!(
                    "tangent shape {:?} differs from the images' {:?}",
                    tangent.dims(),
                    images.dims()
                )));
            }
            let e = self.condition_embed(groups, &vec![None; n], images.device())?;
            return self.forward_jvp_embedded(images, tangent, &e, n);
        }
        self.forward_jvp(images, tangent, groups)
    }
}
