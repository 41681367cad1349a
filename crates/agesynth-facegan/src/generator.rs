//! The FaceGAN generator: an age-conditioned U-Net.
//!
//! ```text
//! x (N,3,S,S) ++ one-hot planes (N,G,S,S)
//!   stem      3×3 conv → c0                        ─────────── skip 0 ──┐
//!   down[i]   4×4 stride-2 conv → c(i+1)   (S/2^(i+1))  ── skip i+1 ──┐  │
//!   ...                                                               │  │
//!   bottleneck: [age_fuse 3×3 conv of h ++ embedding planes]  (concat) │  │
//!               res[j]: h + conv(leaky(FiLM(conv h)))   (modulation)  │  │
//!   up[i]     4×4 stride-2 transposed conv → c(i), ++ skip i, 3×3 conv ┘  │
//!   ...                                  (skip 0 scaled by full_res_skip) ┘
//!   to_rgb    3×3 conv → 3; out = tanh(atanh(x) + d)  (residual) or tanh(d)
//!             (or, in luma space, x + tanh(atanh(l) + d) − l, l the luma of x);
//!             d's colour part (d less its channel mean) scaled by change_chroma
//! ```
//! All activations are leaky ReLU 0.2, fused into our CPU conv kernels. There
//! is no normalisation layer: FiLM works on the raw features, and the
//! network stays cheap at 64 px on two cores.

use agesynth_core::{AgeBins, AgeGenerator, AgeGroup, Error, Result};
use agesynth_nn::{ops, Activation, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use candle_core::{Module, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder};

use crate::config::{BottleneckAge, FaceGanConfig, ResidualSpace};

const SLOPE: f64 = 0.2;

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    act: bool,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding: pad,
        stride,
        activation: if act {
            Activation::LeakyRelu(SLOPE)
        } else {
            Activation::Identity
        },
        ..Conv2dConfig::new(cin, cout, k)
    };
    Conv2d::new(&cfg, vb)
}

/// One-hot codes of `groups` as planes `(N, G, h, w)` of `dtype`.
pub(crate) fn age_planes(
    bins: &AgeBins,
    groups: &[AgeGroup],
    h: usize,
    w: usize,
    like: &Tensor,
) -> Result<Tensor> {
    let n = groups.len();
    let g = bins.len();
    Ok(bins
        .one_hot_tensor(groups, like.device())?
        .to_dtype(like.dtype())?
        .reshape((n, g, 1, 1))?
        .broadcast_as((n, g, h, w))?
        .contiguous()?)
}

/// A bottleneck residual block `h + conv2(leaky(FiLM(conv1(h))))`.
#[derive(Clone, Debug)]
struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    /// `(γ, β)` from the age embedding, in modulation mode.
    film: Option<Linear>,
}

impl ResBlock {
    fn new(c: usize, embed: usize, film: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(ResBlock {
            conv1: conv(c, c, 3, 1, 1, !film, vb.pp("conv1"))?,
            conv2: conv(c, c, 3, 1, 1, false, vb.pp("conv2"))?,
            film: if film {
                Some(candle_nn::linear(embed, 2 * c, vb.pp("film"))?)
            } else {
                None
            },
        })
    }

    fn forward(&self, h: &Tensor, e: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = self.conv1.forward(h)?;
        if let Some(film) = &self.film {
            let (n, c, _, _) = y.dims4()?;
            let gb = film.forward(e)?; // (N, 2C)
            let gamma = (gb.narrow(1, 0, c)? + 1.0)?.reshape((n, c, 1, 1))?;
            let beta = gb.narrow(1, c, c)?.reshape((n, c, 1, 1))?;
            y = ops::leaky_relu(&y.broadcast_mul(&gamma)?.broadcast_add(&beta)?, SLOPE)?;
        }
        h + self.conv2.forward(&y)?
    }
}

/// One decoder level: upsample, concatenate the skip, fuse.
#[derive(Clone, Debug)]
struct UpBlock {
    up: ConvTranspose2d,
    fuse: Conv2d,
}

/// The age-conditioned U-Net generator of FaceGAN.
#[derive(Clone, Debug)]
pub struct Generator {
    cfg: FaceGanConfig,
    bins: AgeBins,
    stem: Conv2d,
    down: Vec<Conv2d>,
    age_embed: Embedding,
    age_fuse: Option<Conv2d>,
    res: Vec<ResBlock>,
    up: Vec<UpBlock>,
    to_rgb: Conv2d,
}

impl Generator {
    /// Builds the generator, reading or initialising its weights from `vb`
    /// (names follow the fields: `stem`, `down.i`, `age_embed`, `age_fuse`,
    /// `res.j.{conv1,conv2,film}`, `up.i.{up,fuse}`, `to_rgb`).
    pub fn new(cfg: &FaceGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let bins = cfg.bins()?;
        let g = bins.len();
        let ch = &cfg.g_channels;
        let e = cfg.age_embed_dim;
        let stem = conv(3 + g, ch[0], 3, 1, 1, true, vb.pp("stem"))?;
        let mut down = Vec::new();
        for i in 0..ch.len() - 1 {
            down.push(conv(
                ch[i],
                ch[i + 1],
                4,
                2,
                1,
                true,
                vb.pp(format!("down.{i}")),
            )?);
        }
        let cb = *ch.last().unwrap_or(&ch[0]);
        let age_embed = candle_nn::embedding(g, e, vb.pp("age_embed"))?;
        let film = cfg.bottleneck_age == BottleneckAge::Modulation;
        let age_fuse = if film {
            None
        } else {
            Some(conv(cb + e, cb, 3, 1, 1, true, vb.pp("age_fuse"))?)
        };
        let mut res = Vec::new();
        for j in 0..cfg.g_res_blocks {
            res.push(ResBlock::new(cb, e, film, vb.pp(format!("res.{j}")))?);
        }
        let mut up = Vec::new();
        for i in (0..ch.len() - 1).rev() {
            let vbi = vb.pp(format!("up.{i}"));
            let ucfg = ConvTranspose2dConfig {
                padding: 1,
                stride: 2,
                activation: Activation::LeakyRelu(SLOPE),
                ..ConvTranspose2dConfig::new(ch[i + 1], ch[i], 4)
            };
            up.push(UpBlock {
                up: ConvTranspose2d::new(&ucfg, vbi.pp("up"))?,
                fuse: conv(2 * ch[i], ch[i], 3, 1, 1, true, vbi.pp("fuse"))?,
            });
        }
        let to_rgb = conv(ch[0], 3, 3, 1, 1, false, vb.pp("to_rgb"))?;
        Ok(Generator {
            cfg: cfg.clone(),
            bins,
            stem,
            down,
            age_embed,
            age_fuse,
            res,
            up,
            to_rgb,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &FaceGanConfig {
        &self.cfg
    }

    fn check(&self, images: &Tensor, targets: &[AgeGroup]) -> Result<()> {
        let s = self.cfg.image_size;
        match images.dims() {
            &[n, 3, h, w] if h == s && w == s && n == targets.len() => Ok(()),
            d => Err(Error::InvalidInput(format!(
                "the FaceGAN generator takes images (N, 3, {s}, {s}) with one target group each; got {d:?} and {} groups",
                targets.len()
            ))),
        }
    }

    /// The faces of `images` `(N, 3, S, S)` in `[-1, 1]` at the age groups
    /// `targets`: `(N, 3, S, S)` in `(-1, 1)` (in `[-1, 1]` with
    /// [`ResidualSpace::Luma`], where a channel may reach ±1), differentiable.
    pub fn forward(&self, images: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        self.check(images, targets)?;
        let s = self.cfg.image_size;
        let planes = age_planes(&self.bins, targets, s, s, images)?;
        let mut h = self.stem.forward(&Tensor::cat(&[images, &planes], 1)?)?;
        let mut skips = Vec::with_capacity(self.down.len());
        for d in &self.down {
            skips.push(h.clone());
            h = d.forward(&h)?;
        }
        let idx = self.bins.index_tensor(targets, images.device())?;
        let e = self.age_embed.forward(&idx)?.to_dtype(images.dtype())?; // (N, E)
        if let Some(fuse) = &self.age_fuse {
            let (n, _, hh, ww) = h.dims4()?;
            let ep = e
                .reshape((n, self.cfg.age_embed_dim, 1, 1))?
                .broadcast_as((n, self.cfg.age_embed_dim, hh, ww))?
                .contiguous()?;
            h = fuse.forward(&Tensor::cat(&[&h, &ep], 1)?)?;
        }
        for r in &self.res {
            h = r.forward(&h, &e)?;
        }
        for u in &self.up {
            let skip = skips
                .pop()
                .ok_or_else(|| Error::InvalidInput("U-Net skip stack is empty".into()))?;
            // The stem's features are the last skip taken: the full-resolution one.
            let scale = self.cfg.full_res_skip;
            let skip = if skips.is_empty() && scale != 1.0 {
                (skip * scale)?
            } else {
                skip
            };
            let x = u.up.forward(&h)?;
            h = u.fuse.forward(&Tensor::cat(&[&x, &skip], 1)?)?;
        }
        let mut d = self.to_rgb.forward(&h)?;
        if self.cfg.change_chroma != 1.0 {
            let grey = d.mean_keepdim(1)?;
            let colour = d.broadcast_sub(&grey)?;
            d = grey.broadcast_add(&(colour * self.cfg.change_chroma)?)?;
        }
        if !self.cfg.residual_output {
            return Ok(ops::tanh(&d)?);
        }
        match self.cfg.residual_space {
            ResidualSpace::Channel => Ok(ops::tanh(&(atanh_input(images)? + d)?)?),
            ResidualSpace::Luma => luma_residual(images, &d),
        }
    }

    /// Every face of `images` at every age group: `(N, G, 3, S, S)`.
    pub fn all_groups(&self, images: &Tensor) -> Result<Tensor> {
        let n = images.dim(0)?;
        let mut outs = Vec::with_capacity(self.bins.len());
        for g in self.bins.groups() {
            outs.push(self.forward(images, &vec![g; n])?.unsqueeze(1)?);
        }
        Ok(Tensor::cat(&outs, 1)?)
    }
}

/// Largest `|x|` whose `atanh` the residual output takes, so that
/// saturated pixels stay finite.
const ATANH_LIMIT: f64 = 1.0 - 1e-3;

/// `atanh(x)` of the input images (no gradient needed), clamped to
/// `|x| ≤ 1 − 10⁻³` so that saturated pixels stay finite.
fn atanh_input(x: &Tensor) -> Result<Tensor> {
    let x = x.detach().clamp(-ATANH_LIMIT, ATANH_LIMIT)?;
    let ratio = ((&x + 1.0)? / (x.neg()? + 1.0)?)?;
    Ok((ratio.log()? * 0.5)?)
}

/// Rec. 601 luma weights of R, G and B.
const LUMA: [f64; 3] = [0.299, 0.587, 0.114];

/// The residual output in luma space ([`ResidualSpace::Luma`]):
/// `clamp(x + tanh(atanh(l) + d) − l, −1, 1)` with `l` the luma of `x`
/// (clamped as [`atanh_input`] clamps), so one change moves a pixel's three
/// channels by the same amount.
fn luma_residual(images: &Tensor, d: &Tensor) -> Result<Tensor> {
    let x = images.detach();
    let l = ((x.narrow(1, 0, 1)? * LUMA[0])?
        + (x.narrow(1, 1, 1)? * LUMA[1])?
        + (x.narrow(1, 2, 1)? * LUMA[2])?)?
        .clamp(-ATANH_LIMIT, ATANH_LIMIT)?;
    let moved = ops::tanh(&atanh_input(&l)?.broadcast_add(d)?)?;
    let change = moved.broadcast_sub(&l)?;
    Ok((x + change)?.clamp(-1.0, 1.0)?)
}

impl AgeGenerator for Generator {
    fn generate(&self, input: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        self.forward(input, targets)
    }

    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }

    fn image_size(&self) -> usize {
        self.cfg.image_size
    }
}
