//! The generator: mapping network (z ++ age embedding -> w) and synthesis
//! network (w's -> image), with the truncation trick and style mixing.

use agesynth_core::{AgeBins, AgeGenerator, AgeGroup, Error, Gender, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::CStyleGanConfig;
use crate::layers::{pixel_norm, upsample2x, EqualLinear, StyledConv, ToRgb};

/// Names (relative to the generator's prefix) of variables that are buffers,
/// not trained parameters: the running mean of `w` per condition (age group,
/// or gender and age group).
pub const GENERATOR_BUFFERS: [&str; 1] = ["w_avg"];

/// Where the synthesis network's per-pixel noise comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Noise {
    /// Fresh Gaussian noise from the device's generator (training).
    #[default]
    Random,
    /// Gaussian noise from a seeded generator: the same seed and batch size
    /// give the same noise (reproducible samples and tests).
    Seeded(u64),
    /// No noise.
    Off,
}

/// Style mixing: a second latent whose `w` drives the layers from
/// `crossover` on (`1 <= crossover < num_ws`).
#[derive(Debug, Clone)]
pub struct StyleMix {
    /// Second latents `(N, z_dim)`.
    pub z: Tensor,
    /// First `w` index taken from the second latent.
    pub crossover: usize,
}

/// Options of [`Generator::forward`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Truncation `ψ`: `w ← w̄_g + ψ (w − w̄_g)` towards the running mean of
    /// the target group. 1 disables it, 0 gives each group's mean face.
    pub truncation: f64,
    /// Optional style mixing with a second latent.
    pub mixing: Option<StyleMix>,
    /// Noise inputs.
    pub noise: Noise,
    /// Layers `0..age_free_layers` of the synthesis network read the
    /// latent's *age-free* `w` (the mean of its `w` over every age group,
    /// truncated towards the mean of the groups' `w̄`), so that the age
    /// condition reaches only the finer styles: in StyleGAN the coarse
    /// styles carry pose, face shape and sex, which a person keeps across
    /// ages. 0 (the default): the model's own
    /// [`CStyleGanConfig::age_free_layers`] (0 for a model trained without).
    /// Groups below the model's [`CStyleGanConfig::age_free_from_group`]
    /// keep their own `w` in those layers too.
    pub age_free_layers: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            truncation: 1.0,
            mixing: None,
            noise: Noise::Random,
            age_free_layers: 0,
        }
    }
}

/// The mapping network: `z` (pixel-normalised) concatenated with a learned,
/// pixel-normalised embedding of the age group, through an MLP with leaky
/// ReLUs and equalised learning rate (multiplier `mapping_lr_mul`). A
/// gender-conditioned model adds a learned offset of `w` per gender: zero at
/// initialisation (a warm-started model first computes what its source did)
/// and a plain tensor, so it learns at the optimiser's full rate rather than
/// the mapping's hundredfold slower one (in StyleGAN, sex is close to a
/// linear direction of `w`). Weights `age_embed (groups, age_embed_dim)`,
/// `gender_offset (2, w_dim)`, `layers.{i}.*`.
#[derive(Debug, Clone)]
pub struct MappingNetwork {
    age_embed: Tensor,
    gender_offset: Option<Tensor>,
    layers: Vec<EqualLinear>,
}

impl MappingNetwork {
    /// Builds the mapping network of `cfg`.
    pub fn new(cfg: &CStyleGanConfig, vb: VarBuilder) -> Result<Self> {
        let age_embed = vb.get_with_hints(
            (cfg.num_groups(), cfg.age_embed_dim),
            "age_embed",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let gender_offset = if cfg.gender_conditioned {
            Some(vb.get_with_hints((2, cfg.w_dim), "gender_offset", Init::Const(0.0))?)
        } else {
            None
        };
        let mut layers = Vec::with_capacity(cfg.mapping_layers);
        let vbl = vb.pp("layers");
        for i in 0..cfg.mapping_layers {
            let in_dim = if i == 0 {
                cfg.z_dim + cfg.age_embed_dim
            } else {
                cfg.w_dim
            };
            layers.push(EqualLinear::new(
                in_dim,
                cfg.w_dim,
                Some(0.0),
                cfg.mapping_lr_mul,
                true,
                vbl.pp(i),
            )?);
        }
        Ok(Self {
            age_embed,
            gender_offset,
            layers,
        })
    }

    /// `z (N, z_dim)`, group indices `(N,)` u32 and, for a gender-conditioned
    /// model, gender indices `(N,)` u32 (0 male, 1 female) -> `w (N, w_dim)`.
    pub fn forward(
        &self,
        z: &Tensor,
        group_idx: &Tensor,
        gender_idx: Option<&Tensor>,
    ) -> Result<Tensor> {
        let e = pixel_norm(&self.age_embed.index_select(group_idx, 0)?)?;
        let mut x = Tensor::cat(&[pixel_norm(z)?, e], 1)?;
        for l in &self.layers {
            x = l.forward(&x)?;
        }
        match (&self.gender_offset, gender_idx) {
            (Some(table), Some(idx)) => Ok(x.add(&table.index_select(idx, 0)?)?),
            (None, None) => Ok(x),
            (Some(_), None) => Err(Error::InvalidInput(
                "a gender-conditioned mapping network needs the latents' genders".into(),
            )),
            (None, Some(_)) => Err(Error::InvalidInput(
                "this mapping network is not conditioned on gender".into(),
            )),
        }
    }
}

/// One resolution level of the synthesis network: an upsampling styled conv
/// (absent at 4×4), a styled conv and a to-RGB layer.
#[derive(Debug, Clone)]
struct SynthesisBlock {
    conv0: Option<StyledConv>,
    conv1: StyledConv,
    to_rgb: ToRgb,
}

/// The synthesis network: a learned 4×4 constant, then per level styled
/// convolutions with noise, and skip connections summing the (upsampled)
/// to-RGB outputs of every level. Weights `const_input (1, C, 4, 4)`,
/// `blocks.{level}.{conv0,conv1,to_rgb}.*`.
///
/// Level `l` reads `ws[2l-1]` (conv0), `ws[2l]` (conv1) and `ws[2l+1]`
/// (to-RGB), so the to-RGB layer shares its `w` with the next level's first
/// convolution, as in StyleGAN2.
#[derive(Debug, Clone)]
pub struct SynthesisNetwork {
    const_input: Tensor,
    blocks: Vec<SynthesisBlock>,
    upsample: crate::config::Upsample,
    num_ws: usize,
    w_dim: usize,
}

impl SynthesisNetwork {
    /// Builds the synthesis network of `cfg`.
    pub fn new(cfg: &CStyleGanConfig, vb: VarBuilder) -> Result<Self> {
        let c0 = cfg.g_channels[0];
        let const_input = vb.get_with_hints(
            (1, c0, 4, 4),
            "const_input",
            Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let vbb = vb.pp("blocks");
        let mut blocks = Vec::with_capacity(cfg.levels());
        for (l, &c) in cfg.g_channels.iter().enumerate() {
            let vbl = vbb.pp(l);
            let (conv0, cin) = if l == 0 {
                (None, c0)
            } else {
                let prev = cfg.g_channels[l - 1];
                (
                    Some(StyledConv::new(
                        cfg.block,
                        prev,
                        c,
                        cfg.w_dim,
                        Some(cfg.upsample),
                        vbl.pp("conv0"),
                    )?),
                    c,
                )
            };
            let conv1 = StyledConv::new(cfg.block, cin, c, cfg.w_dim, None, vbl.pp("conv1"))?;
            let to_rgb = ToRgb::new(cfg.block, c, cfg.w_dim, vbl.pp("to_rgb"))?;
            blocks.push(SynthesisBlock {
                conv0,
                conv1,
                to_rgb,
            });
        }
        Ok(Self {
            const_input,
            blocks,
            upsample: cfg.upsample,
            num_ws: cfg.num_ws(),
            w_dim: cfg.w_dim,
        })
    }

    /// Noise planes for every styled conv, in execution order.
    fn noises(
        &self,
        n: usize,
        noise: Noise,
        dtype: DType,
        dev: &Device,
    ) -> Result<Vec<Option<Tensor>>> {
        let mut out = Vec::new();
        let mut rng = match noise {
            Noise::Seeded(seed) => Some(ChaCha8Rng::seed_from_u64(seed)),
            _ => None,
        };
        for l in 0..self.blocks.len() {
            let s = 4usize << l;
            let count = if l == 0 { 1 } else { 2 };
            for _ in 0..count {
                out.push(match noise {
                    Noise::Off => None,
                    Noise::Random => {
                        Some(Tensor::randn(0f32, 1f32, (n, 1, s, s), dev)?.to_dtype(dtype)?)
                    }
                    Noise::Seeded(_) => {
                        let rng = rng
                            .as_mut()
                            .ok_or_else(|| Error::InvalidInput("noise rng".into()))?;
                        let v = gaussian_vec(rng, n * s * s);
                        Some(Tensor::from_vec(v, (n, 1, s, s), dev)?.to_dtype(dtype)?)
                    }
                });
            }
        }
        Ok(out)
    }

    /// `ws (N, num_ws, w_dim)` -> images `(N, 3, S, S)` (raw, not clamped).
    pub fn forward(&self, ws: &Tensor, noise: Noise) -> Result<Tensor> {
        let (n, k, d) = ws.dims3()?;
        if k != self.num_ws || d != self.w_dim {
            return Err(Error::InvalidInput(format!(
                "synthesis expects ws of shape (N, {}, {}), got {:?}",
                self.num_ws,
                self.w_dim,
                ws.dims()
            )));
        }
        let noises = self.noises(n, noise, ws.dtype(), ws.device())?;
        let mut noise_iter = noises.iter();
        let w_at = |i: usize| -> Result<Tensor> { Ok(ws.narrow(1, i, 1)?.squeeze(1)?) };
        let c0 = self.const_input.dim(1)?;
        let mut x = self.const_input.broadcast_as((n, c0, 4, 4))?.contiguous()?;
        let mut img: Option<Tensor> = None;
        for (l, b) in self.blocks.iter().enumerate() {
            if let Some(conv0) = &b.conv0 {
                let nz = noise_iter.next().and_then(|t| t.as_ref());
                x = conv0.forward(&x, &w_at(2 * l - 1)?, nz)?;
            }
            let nz = noise_iter.next().and_then(|t| t.as_ref());
            x = b.conv1.forward(&x, &w_at(2 * l)?, nz)?;
            let rgb = b.to_rgb.forward(&x, &w_at(2 * l + 1)?)?;
            img = Some(match img {
                None => rgb,
                Some(prev) => (upsample2x(&prev, self.upsample)? + rgb)?,
            });
        }
        img.ok_or_else(|| Error::Config("synthesis network has no blocks".into()))
    }
}

/// Standard normal samples from `rng` (Box–Muller).
fn gaussian_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len + 1);
    while v.len() < len {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        v.push((r * t.cos()) as f32);
        v.push((r * t.sin()) as f32);
    }
    v.truncate(len);
    v
}

/// Standard normal latents `(n, z_dim)` from a seed (reproducible on any
/// device), in f32.
pub fn seeded_latents(n: usize, z_dim: usize, seed: u64, device: &Device) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(Tensor::from_vec(
        gaussian_vec(&mut rng, n * z_dim),
        (n, z_dim),
        device,
    )?)
}

/// The cStyleGAN generator. Weights `mapping.*`, `synthesis.*` and the
/// buffer `w_avg (groups, w_dim)` (see [`GENERATOR_BUFFERS`]).
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: CStyleGanConfig,
    bins: AgeBins,
    mapping: MappingNetwork,
    synthesis: SynthesisNetwork,
    w_avg: Tensor,
}

impl Generator {
    /// Builds the generator of `cfg` from `vb` (a fresh `VarMap` initialises
    /// it; see [`crate::seeded_var_builder`] for a reproducible init).
    pub fn new(cfg: &CStyleGanConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mapping = MappingNetwork::new(cfg, vb.pp("mapping"))?;
        let synthesis = SynthesisNetwork::new(cfg, vb.pp("synthesis"))?;
        let w_avg =
            vb.get_with_hints((cfg.num_conditions(), cfg.w_dim), "w_avg", Init::Const(0.0))?;
        Ok(Self {
            cfg: cfg.clone(),
            bins: cfg.bins()?,
            mapping,
            synthesis,
            w_avg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CStyleGanConfig {
        &self.cfg
    }

    /// Number of `w` vectors the synthesis network reads (for style mixing).
    pub fn num_ws(&self) -> usize {
        self.cfg.num_ws()
    }

    /// The running mean of `w` per condition, `(conditions, w_dim)`: per age
    /// group, or per gender and age group (row `gender · groups + group`,
    /// male 0, female 1) for a gender-conditioned model.
    pub fn w_avg(&self) -> &Tensor {
        &self.w_avg
    }

    fn group_idx(&self, groups: &[AgeGroup], n: usize) -> Result<Tensor> {
        if groups.len() != n {
            return Err(Error::InvalidInput(format!(
                "{} latents but {} age groups",
                n,
                groups.len()
            )));
        }
        self.bins.index_tensor(groups, self.w_avg.device())
    }

    fn check_z(&self, z: &Tensor) -> Result<usize> {
        match z.dims() {
            [n, d] if *d == self.cfg.z_dim => Ok(*n),
            other => Err(Error::InvalidInput(format!(
                "latents must have shape (N, {}), got {other:?}",
                self.cfg.z_dim
            ))),
        }
    }

    /// The gender of each latent of `z (N, z_dim)` for a gender-conditioned
    /// model: female where its first coordinate is ≥ 0, male below (`None`
    /// for a model without gender). A latent keeps its gender at every age
    /// group; [`set_latent_gender`] chooses it.
    pub fn latent_genders(&self, z: &Tensor) -> Result<Option<Vec<Gender>>> {
        self.check_z(z)?;
        if !self.cfg.gender_conditioned {
            return Ok(None);
        }
        let first = z
            .narrow(1, 0, 1)?
            .squeeze(1)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Ok(Some(
            first
                .into_iter()
                .map(|v| {
                    if v >= 0.0 {
                        Gender::Female
                    } else {
                        Gender::Male
                    }
                })
                .collect(),
        ))
    }

    /// The gender indices `(N,)` of `z` (0 male, 1 female), for a
    /// gender-conditioned model.
    fn gender_idx(&self, z: &Tensor) -> Result<Option<Tensor>> {
        Ok(match self.latent_genders(z)? {
            None => None,
            Some(g) => {
                let v: Vec<u32> = g.iter().map(|&x| gender_index(x) as u32).collect();
                Some(Tensor::from_vec(v, g.len(), self.w_avg.device())?)
            }
        })
    }

    /// The condition row (see [`Generator::w_avg`]) of each latent of `z` at
    /// `groups`.
    pub fn conditions(&self, z: &Tensor, groups: &[AgeGroup]) -> Result<Vec<usize>> {
        let n = self.check_z(z)?;
        self.group_idx(groups, n)?;
        let g = self.cfg.num_groups();
        Ok(match self.latent_genders(z)? {
            None => groups.iter().map(|x| x.0).collect(),
            Some(genders) => genders
                .iter()
                .zip(groups)
                .map(|(&s, x)| gender_index(s) * g + x.0)
                .collect(),
        })
    }

    /// The mapping network: `z (N, z_dim)` at `groups` -> `w (N, w_dim)`
    /// (a gender-conditioned model reads each latent's gender from it:
    /// [`Generator::latent_genders`]).
    pub fn mapping(&self, z: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        let n = self.check_z(z)?;
        let idx = self.group_idx(groups, n)?;
        let gender = self.gender_idx(z)?;
        self.mapping.forward(z, &idx, gender.as_ref())
    }

    /// Truncation towards the mean `w` of each latent's condition:
    /// `w̄_c + ψ (w − w̄_c)`. `ψ = 1` returns `w` unchanged.
    pub fn truncate(
        &self,
        w: &Tensor,
        z: &Tensor,
        groups: &[AgeGroup],
        psi: f64,
    ) -> Result<Tensor> {
        if psi == 1.0 {
            return Ok(w.clone());
        }
        let rows: Vec<u32> = self
            .conditions(z, groups)?
            .into_iter()
            .map(|r| r as u32)
            .collect();
        let idx = Tensor::from_vec(rows, w.dim(0)?, w.device())?;
        let avg = self.w_avg.index_select(&idx, 0)?.to_dtype(w.dtype())?;
        Ok((&avg + ((w - &avg)? * psi)?)?)
    }

    /// Repeats `w (N, w_dim)` for every synthesis layer: `(N, num_ws, w_dim)`.
    pub fn broadcast_ws(&self, w: &Tensor) -> Result<Tensor> {
        let (n, d) = w.dims2()?;
        Ok(w.unsqueeze(1)?
            .broadcast_as((n, self.num_ws(), d))?
            .contiguous()?)
    }

    /// Style mixing: layers `< crossover` read `w1`, the rest `w2`.
    pub fn mix_ws(&self, w1: &Tensor, w2: &Tensor, crossover: usize) -> Result<Tensor> {
        let k = self.num_ws();
        if crossover == 0 || crossover >= k {
            return Err(Error::InvalidInput(format!(
                "style-mixing crossover must be in 1..{k}, got {crossover}"
            )));
        }
        let a = self.broadcast_ws(w1)?.narrow(1, 0, crossover)?;
        let b = self.broadcast_ws(w2)?.narrow(1, crossover, k - crossover)?;
        Ok(Tensor::cat(&[a, b], 1)?)
    }

    /// The synthesis network: `ws (N, num_ws, w_dim)` -> raw images
    /// `(N, 3, S, S)` (about `[-1, 1]`, not clamped, for training).
    pub fn synthesis(&self, ws: &Tensor, noise: Noise) -> Result<Tensor> {
        self.synthesis.forward(ws, noise)
    }

    /// The age-free layers a render with `opts` uses: the options' when set,
    /// else the model's own.
    pub fn effective_age_free_layers(&self, opts: &GenerateOptions) -> usize {
        if opts.age_free_layers > 0 {
            opts.age_free_layers
        } else {
            self.cfg.age_free_layers
        }
    }

    /// Full forward pass returning the raw images and the *untruncated* `w`
    /// of the first latent (to feed [`Generator::update_w_avg`] in training).
    pub fn forward_with_w(
        &self,
        z: &Tensor,
        groups: &[AgeGroup],
        opts: &GenerateOptions,
    ) -> Result<(Tensor, Tensor)> {
        let w = self.mapping(z, groups)?;
        let wt = self.truncate(&w, z, groups, opts.truncation)?;
        let ws = match &opts.mixing {
            None => self.broadcast_ws(&wt)?,
            Some(mix) => {
                let w2 = self.truncate(
                    &self.mapping(&mix.z, groups)?,
                    &mix.z,
                    groups,
                    opts.truncation,
                )?;
                self.mix_ws(&wt, &w2, mix.crossover)?
            }
        };
        let ws = match self.effective_age_free_layers(opts) {
            0 => ws,
            k => {
                let n_ws = self.num_ws();
                if k >= n_ws {
                    return Err(Error::InvalidInput(format!(
                        "age-free layers must be fewer than the {n_ws} synthesis layers, got {k}"
                    )));
                }
                let free = self
                    .broadcast_ws(&self.age_free_w(z, opts.truncation)?)?
                    .narrow(1, 0, k)?;
                let own = ws.narrow(1, 0, k)?;
                let coarse = match self.cfg.age_free_from_group {
                    0 => free,
                    from => {
                        // Rows of a younger group keep their own coarse styles.
                        let keep: Vec<f32> = groups
                            .iter()
                            .map(|g| if g.0 < from { 1.0 } else { 0.0 })
                            .collect();
                        if keep.iter().all(|&m| m == 0.0) {
                            free
                        } else {
                            let m = Tensor::from_vec(keep, (groups.len(), 1, 1), own.device())?
                                .to_dtype(own.dtype())?;
                            (free.broadcast_mul(&(1.0 - &m)?)? + own.broadcast_mul(&m)?)?
                        }
                    }
                };
                Tensor::cat(&[coarse, ws.narrow(1, k, n_ws - k)?], 1)?
            }
        };
        Ok((self.synthesis(&ws, opts.noise)?, w))
    }

    /// The age-free `w` of latents `z (N, z_dim)`: the mean of their `w`
    /// over every age group, truncated by `psi` towards the mean of the
    /// running means of their gender's groups (of all groups for a model
    /// without gender).
    pub fn age_free_w(&self, z: &Tensor, psi: f64) -> Result<Tensor> {
        let n = self.check_z(z)?;
        let (g, d) = (self.cfg.num_groups(), self.cfg.w_dim);
        // One mapping pass over the latents repeated at every group.
        let groups: Vec<AgeGroup> = self
            .bins
            .groups()
            .flat_map(|grp| std::iter::repeat_n(grp, n))
            .collect();
        let zs = Tensor::cat(&vec![z; g], 0)?;
        let w = self.mapping(&zs, &groups)?.reshape((g, n, d))?.mean(0)?;
        if psi == 1.0 {
            return Ok(w);
        }
        let per_gender = self
            .w_avg
            .reshape((self.cfg.num_genders(), g, d))?
            .mean(1)?
            .to_dtype(w.dtype())?;
        let avg = match self.gender_idx(z)? {
            Some(idx) => per_gender.index_select(&idx, 0)?,
            None => per_gender.broadcast_as((n, d))?.contiguous()?,
        };
        Ok((&avg + ((&w - &avg)? * psi)?)?)
    }

    /// Full forward pass: latents `(N, z_dim)` at age `groups` -> raw images
    /// `(N, 3, S, S)` (not clamped).
    pub fn forward(
        &self,
        z: &Tensor,
        groups: &[AgeGroup],
        opts: &GenerateOptions,
    ) -> Result<Tensor> {
        Ok(self.forward_with_w(z, groups, opts)?.0)
    }

    /// Moves the running mean of `w` of every condition present in the
    /// batch towards the batch mean of that condition's `w`:
    /// `w̄_c ← β w̄_c + (1−β) mean(w | c)` with `β = w_avg_beta`; `z` are the
    /// latents the `w` came from (their genders pick the rows of a
    /// gender-conditioned model).
    pub fn update_w_avg(&self, w: &Tensor, z: &Tensor, groups: &[AgeGroup]) -> Result<()> {
        let rows = self.conditions(z, groups)?;
        self.update_w_avg_rows(w, &rows, self.cfg.w_avg_beta)
    }

    /// [`Generator::update_w_avg`] with an explicit decay `beta` (0 replaces
    /// the means), for a model without gender (whose rows are the groups).
    /// The generator must have been built over a `VarMap` (its `w_avg` a
    /// variable): over read-only tensors the update could not reach the
    /// model, and is an error rather than silently lost.
    pub fn update_w_avg_with(&self, w: &Tensor, groups: &[AgeGroup], beta: f64) -> Result<()> {
        if self.cfg.gender_conditioned {
            return Err(Error::InvalidInput(
                "a gender-conditioned model's running means need the latents: use update_w_avg"
                    .into(),
            ));
        }
        let rows: Vec<usize> = groups.iter().map(|g| g.0).collect();
        self.update_w_avg_rows(w, &rows, beta)
    }

    fn update_w_avg_rows(&self, w: &Tensor, rows: &[usize], beta: f64) -> Result<()> {
        if !self.w_avg.is_variable() {
            return Err(Error::InvalidInput(
                "this generator's w_avg is not a variable (built without a VarMap): its running \
                 mean cannot be updated"
                    .into(),
            ));
        }
        let (n, d) = w.dims2()?;
        if rows.len() != n {
            return Err(Error::InvalidInput(format!(
                "{n} w's but {} conditions",
                rows.len()
            )));
        }
        let c = self.cfg.num_conditions();
        let data = w.detach().to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let mut avg = self.w_avg.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let mut sums = vec![vec![0f64; d]; c];
        let mut counts = vec![0usize; c];
        for (row, &ci) in data.iter().zip(rows) {
            if ci >= c {
                return Err(Error::InvalidInput(format!(
                    "condition {ci} out of range (0..{c})"
                )));
            }
            counts[ci] += 1;
            for (s, v) in sums[ci].iter_mut().zip(row) {
                *s += v;
            }
        }
        for ci in 0..c {
            if counts[ci] > 0 {
                for (a, s) in avg[ci].iter_mut().zip(&sums[ci]) {
                    *a = beta * *a + (1.0 - beta) * s / counts[ci] as f64;
                }
            }
        }
        let flat: Vec<f64> = avg.into_iter().flatten().collect();
        let t =
            Tensor::from_vec(flat, (c, d), self.w_avg.device())?.to_dtype(self.w_avg.dtype())?;
        Var::from_tensor(&self.w_avg)?.set(&t)?;
        Ok(())
    }

    /// Sets each condition's mean `w` to the mean over `samples` latents
    /// drawn from `seed` (for a model whose running mean was never tracked).
    pub fn compute_w_avg(&self, samples: usize, seed: u64) -> Result<()> {
        let dev = self.w_avg.device().clone();
        let z =
            seeded_latents(samples, self.cfg.z_dim, seed, &dev)?.to_dtype(self.w_avg.dtype())?;
        let mut all_w = Vec::new();
        let mut rows = Vec::new();
        for g in self.bins.groups() {
            let groups = vec![g; samples];
            all_w.push(self.mapping(&z, &groups)?);
            rows.extend(self.conditions(&z, &groups)?);
        }
        self.update_w_avg_rows(&Tensor::cat(&all_w, 0)?, &rows, 0.0)
    }
}

/// The index of a gender in a gender-conditioned model's tables: male 0,
/// female 1 (UTKFace's labels).
pub fn gender_index(g: Gender) -> usize {
    match g {
        Gender::Male => 0,
        Gender::Female => 1,
    }
}

/// `z` with each latent's gender set to `gender` for a gender-conditioned
/// model (the sign of its first coordinate: ≥ 0 female), the rest of the
/// latent unchanged.
pub fn set_latent_gender(z: &Tensor, gender: Gender) -> Result<Tensor> {
    let first = z.narrow(1, 0, 1)?.abs()?;
    let first = match gender {
        Gender::Female => first,
        Gender::Male => (first.neg()? - 1e-6)?,
    };
    let d = z.dim(1)?;
    if d == 1 {
        return Ok(first);
    }
    Ok(Tensor::cat(&[first, z.narrow(1, 1, d - 1)?], 1)?)
}

impl AgeGenerator for Generator {
    /// Latents `(N, z_dim)` -> faces at `targets`, clamped to `[-1, 1]`, with
    /// random noise and no truncation.
    fn generate(&self, input: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        Ok(self
            .forward(input, targets, &GenerateOptions::default())?
            .clamp(-1f32, 1f32)?)
    }

    fn age_bins(&self) -> &AgeBins {
        &self.bins
    }

    fn image_size(&self) -> usize {
        self.cfg.image_size
    }
}
