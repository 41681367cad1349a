//! `agesynth train facegan`: the semi-supervised FaceGAN trainer.

use crate::cmd::{Bottleneck, Preset, ResidualSpaceArg};
use std::{path::PathBuf, process::ExitCode, sync::Arc};

use agesynth_core::{AgeClassifier, FaceEmbedder, RealismCritic};
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig};
use agesynth_facegan::FaceGanConfig;
use agesynth_train::{FaceGanDiscriminator, FaceGanTask, FaceGanTrainConfig, SynthPairs};
use anyhow::{bail, Context};
use clap::Args;

use super::{load_real_faces, open_run, run_task, RealFaceArgs, RunArgs};

/// Options of `agesynth train facegan`.
#[derive(Debug, Args)]
pub struct FaceGanArgs {
    /// UTKFace folder (aligned chips), e.g. ../shared/data/utkface; needed
    /// unless --synthetic-fraction is 1.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Synthetic-pairs folder written by `agesynth synth-pairs`; needed
    /// unless --synthetic-fraction is 0.
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Share of each batch drawn from the synthetic pairs (0: real only,
    /// 1: synthetic only).
    #[arg(long, default_value_t = 0.5)]
    pub synthetic_fraction: f64,
    /// Model preset.
    #[arg(long, value_enum, default_value_t = Preset::Cpu64)]
    pub preset: Preset,
    /// How the generator takes the target age at its bottleneck.
    #[arg(long, value_enum, default_value_t = Bottleneck::Modulation)]
    pub bottleneck: Bottleneck,
    /// Scale of the generator's full-resolution U-Net skip: 1 as built, 0
    /// none (the change is then drawn from the half-resolution path while
    /// the residual output keeps the input's detail). No weight depends on
    /// it, so `--init-generator` may start from a file trained with another
    /// value; a resumed run keeps its own.
    #[arg(long, default_value_t = 1.0)]
    pub full_res_skip: f64,
    /// Where the generator's residual output adds its change: `channel`,
    /// each channel in its own tanh domain (as every file before this
    /// option), or `luma`, every channel of a pixel moved alike at the
    /// pixel's luma, so a grey change of a dark, unevenly saturated pixel
    /// stays grey. No weight depends on it, so `--init-generator` may start
    /// from a file trained with the other; a resumed run keeps its own.
    #[arg(long, value_enum, default_value_t = ResidualSpaceArg::Channel)]
    pub residual_space: ResidualSpaceArg,
    /// Scale of the colour part of the generator's change (the change less
    /// its mean over the channels): 1 as built, 0 grey changes only. No
    /// weight depends on it, so `--init-generator` may start from a file
    /// trained with another value; a resumed run keeps its own.
    #[arg(long, default_value_t = 1.0)]
    pub change_chroma: f64,
    /// Split each generator step's batch into this many parts whose passes
    /// run in parallel, their gradients summed into one step: on a 2-core
    /// CPU, 2 trained the shipped recipe 1.1–1.2× as fast as 1 (many of a
    /// step's small ops use one core; see BENCHMARKS.md). The same step for every term that
    /// averages over its rows, up to the order of floating-point sums. A
    /// setting of this process, not of the run: `--resume` takes it anew.
    /// Not with terms that read D (`--adv-weight` or `--age-weight` above 0).
    #[arg(long, default_value_t = 1)]
    pub shards: usize,
    /// Train until this step.
    #[arg(long, default_value_t = 50_000)]
    pub steps: u64,
    /// Inputs per step (real and synthetic together).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// The identity network of the identity term: an identity critic
    /// trained with `agesynth train critic --kind identity` (a weights file
    /// with its sidecar, or its run folder). Default: the weights folder's
    /// `critic-identity64.safetensors` when present; else the term is off.
    #[arg(long)]
    pub identity_critic: Option<PathBuf>,
    /// Use dlib's face-recognition network (the evaluation's identity judge)
    /// as the identity network instead of a critic. The evaluation's
    /// identity numbers then measure the network the generator was trained
    /// against; the run's config records it.
    #[arg(long, conflicts_with = "identity_critic")]
    pub identity_weights: Option<PathBuf>,
    /// Train without the identity term.
    #[arg(long)]
    pub no_identity: bool,
    /// Weight of the identity term [default: 1]
    #[arg(long)]
    pub identity_weight: Option<f64>,
    /// Weight of a second identity term on the outputs whose target is
    /// --old-age-critic-from or older (on top of the identity term, which
    /// reads every output): identity held harder where ageing pulls
    /// hardest [default: 0]
    #[arg(long)]
    pub identity_old_weight: Option<f64>,
    /// Weight of a third identity term on the outputs whose target is
    /// younger than --identity-young-below (on top of the identity term):
    /// identity held harder where making a child of an adult changes the
    /// face most [default: 0]
    #[arg(long)]
    pub identity_young_weight: Option<f64>,
    /// The young rows' identity term reads the targets younger than this
    /// group index (1: the 0–9 group)
    #[arg(long, default_value_t = 1)]
    pub identity_young_below: usize,
    /// The age critic of the age-critic term (`agesynth train critic --kind
    /// age`: a weights file with its sidecar, or its run folder). Default:
    /// the weights folder's `critic-age64.safetensors` when
    /// --age-critic-weight is above 0.
    #[arg(long)]
    pub age_critic: Option<PathBuf>,
    /// Weight of the age-critic term: cross-entropy of the target group from
    /// the frozen age critic on every output [default: 0]
    #[arg(long)]
    pub age_critic_weight: Option<f64>,
    /// Standard deviation (pixels) of the blur through which the age critic
    /// sees the outputs (0: none) [default: 1]
    #[arg(long)]
    pub age_critic_blur: Option<f64>,
    /// The age critic sees the outputs' luminance only, so that its gradient
    /// cannot paint colour
    #[arg(long)]
    pub age_critic_luma: bool,
    /// Target-group probability at which the age critic stops pushing an
    /// output, in (0, 1] (1: plain cross-entropy) [default: 1]
    #[arg(long)]
    pub age_critic_satisfied: Option<f64>,
    /// A second age critic for the old targets (e.g. one trained
    /// adversarially, whose gradient draws grey hair rather than fold
    /// lines): it reads the outputs whose target is --old-age-critic-from or
    /// older, and --age-critic the younger ones. Same blur, luma and
    /// satisfaction settings.
    #[arg(long, requires = "old_age_critic_weight")]
    pub old_age_critic: Option<PathBuf>,
    /// Weight of the second age critic's term [default: 0].
    #[arg(long, requires = "old_age_critic")]
    pub old_age_critic_weight: Option<f64>,
    /// The first target group (index, 0 = 0–9) the second age critic reads.
    #[arg(long, default_value_t = 5)]
    pub old_age_critic_from: usize,
    /// A third age critic for the oldest targets: it reads the outputs
    /// whose target is --oldest-age-critic-from or older, and
    /// --old-age-critic then only the targets from --old-age-critic-from up
    /// to that group (each old group read by the critic whose gradient
    /// draws it best). Same blur, luma and satisfaction settings.
    #[arg(long, requires_all = ["oldest_age_critic_weight", "old_age_critic"])]
    pub oldest_age_critic: Option<PathBuf>,
    /// Weight of the third age critic's term [default: 0].
    #[arg(long, requires = "oldest_age_critic")]
    pub oldest_age_critic_weight: Option<f64>,
    /// The first target group (index) the third age critic reads.
    #[arg(long, default_value_t = 5)]
    pub oldest_age_critic_from: usize,
    /// A gender critic (`agesynth train critic --kind gender`) that reads the
    /// gender of each synthetic identity, so that an age-given-gender critic
    /// (`--kind age-gender`) asks a synthetic row for the target age of its
    /// person's gender, as it does a real face from UTKFace's label
    #[arg(long)]
    pub pair_gender_critic: Option<PathBuf>,
    /// Weight of the gender-keeping term: the --pair-gender-critic reads
    /// each output whose target is --gender-keep-from or older, and a face
    /// whose gender is known (UTKFace's label, or the synthetic identity's)
    /// pays when it no longer looks it, as a woman given a moustache does
    /// [default: 0]
    #[arg(long, requires = "pair_gender_critic")]
    pub gender_keep_weight: Option<f64>,
    /// The first target group (index, 0 = 0–9) the gender-keeping term
    /// reads (children's gender reads poorly at 64 px).
    #[arg(long, default_value_t = 2)]
    pub gender_keep_from: usize,
    /// Probability of the face's own gender from which the gender-keeping
    /// term stops charging [default: 0.9]
    #[arg(long)]
    pub gender_keep_satisfied: Option<f64>,
    /// A cStyleGAN discriminator (a weights file with its .json sidecar, a
    /// checkpoint folder or a run folder of `agesynth train cstylegan`),
    /// frozen, whose logit that an output is a real photo of its target
    /// group and gender the realism term reads
    #[arg(long)]
    pub realism_critic: Option<PathBuf>,
    /// Weight of the realism term: each output whose target is
    /// --realism-from or older pays while the --realism-critic scores it
    /// below --realism-satisfied, so that paint a critic reads as age but no
    /// photo shows costs [default: 0]
    #[arg(long, requires = "realism_critic")]
    pub realism_weight: Option<f64>,
    /// The first target group (index, 0 = 0–9) the realism term reads.
    #[arg(long, default_value_t = 0)]
    pub realism_from: usize,
    /// The realism critic's logit from which a row stops paying (about
    /// where real faces score) [default: 2]
    #[arg(long)]
    pub realism_satisfied: Option<f64>,
    /// Train against a cStyleGAN discriminator started from this trained
    /// one (a weights file with its .json sidecar, a checkpoint folder or a
    /// run folder of `agesynth train cstylegan`) instead of FaceGAN's own
    /// PatchGAN: it knows real faces of every group from the start. It has
    /// no age head (use --age-weight 0)
    #[arg(long)]
    pub discriminator_init: Option<PathBuf>,
    /// Standard deviation (pixels) of the blur through which the identity
    /// network sees outputs and inputs (0: none) [default: 0]
    #[arg(long)]
    pub identity_blur: Option<f64>,
    /// The identity network sees outputs and inputs as luminance only, so
    /// that its gradient cannot paint colour
    #[arg(long)]
    pub identity_luma: bool,
    /// Probability that a row is shown in greyscale (input, and a synthetic
    /// row's target too), in [0, 1] [default: 0]
    #[arg(long)]
    pub grey_prob: Option<f64>,
    /// Weight of G's adversarial term [default: 1]
    #[arg(long)]
    pub adv_weight: Option<f64>,
    /// Learning rate of D alone [default: --lr]
    #[arg(long)]
    pub d_lr: Option<f64>,
    /// Weight of the discriminator's wrong-age term: real faces shown with a
    /// group other than their own count as fakes [default: 0]
    #[arg(long)]
    pub d_wrong_age: Option<f64>,
    /// Probability that a real row's target is its own group (those rows get
    /// the self-reconstruction); unset: targets uniform over all groups.
    #[arg(long)]
    pub own_group_prob: Option<f64>,
    /// Other targets of real rows are at least this many groups from the
    /// source (with --own-group-prob) [default: 1]
    #[arg(long)]
    pub min_target_distance: Option<usize>,
    /// Rows by target: synthetic rows take the targets from this age group
    /// (0-based) up, real rows the groups below it (and their own group)
    /// [default: every row draws from every group]
    #[arg(long)]
    pub synthetic_targets_from: Option<usize>,
    /// Real rows of this age group (0-based) and older never take their own
    /// group as target (no self-reconstruction there) [default: all may]
    #[arg(long)]
    pub own_group_below: Option<usize>,
    /// Apply the cycle reconstruction only to real rows whose target is
    /// another group (the rows at their own group get self-reconstruction).
    #[arg(long)]
    pub cycle_away_only: bool,
    /// Weight of the self-reconstruction of real rows at their own group
    /// [default: 10]
    #[arg(long)]
    pub self_rec_weight: Option<f64>,
    /// Weight of the synthetic pairs' reconstruction [default: 10]
    #[arg(long)]
    pub syn_rec_weight: Option<f64>,
    /// Start G (and its EMA) from this generator (a weights file with its
    /// sidecar, a checkpoint or a run folder) instead of random weights: a
    /// warm start. D starts fresh. Ignored on --resume.
    #[arg(long)]
    pub init_generator: Option<PathBuf>,
    /// Learning rate of G and D.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Weight γ of the lazy R1 penalty on real images (0: off) [default: 1]
    #[arg(long)]
    pub r1_gamma: Option<f64>,
    /// Weight of the age term: cross-entropy of the target group from the
    /// discriminator's auxiliary head (for G) and of the real groups (for
    /// D) [default: 1; ignored without the head]
    #[arg(long)]
    pub age_weight: Option<f64>,
    /// Weight of the cycle reconstruction of the real inputs [default: 10]
    #[arg(long)]
    pub cycle_weight: Option<f64>,
    /// Weight of the total variation of the outputs [default: 0]
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// Weight of the total variation of the change of colour from input to
    /// output: coloured stripes and speckle cost, tone and brightness
    /// changes do not [default: 0]
    #[arg(long)]
    pub chroma_weight: Option<f64>,
    /// Weight of the sharp part of the change from input to output (what a
    /// blur of --sharp-change-sigma removes): a change the blurred age
    /// critic cannot see costs [default: 0]
    #[arg(long)]
    pub sharp_change_weight: Option<f64>,
    /// Standard deviation (pixels) of that blur [default: 2]
    #[arg(long)]
    pub sharp_change_sigma: Option<f64>,
    /// Weight of the dark-patch term: a region whose blurred brightness
    /// falls by more than --dark-patch-threshold from input to output (a
    /// blot a critic reads as age) costs [default: 0]
    #[arg(long)]
    pub dark_patch_weight: Option<f64>,
    /// Standard deviation (pixels) of that term's blur: narrower dark
    /// changes count as lines, not patches [default: 1.5]
    #[arg(long)]
    pub dark_patch_sigma: Option<f64>,
    /// How far the blurred luma (images in [-1, 1]) may fall before it costs
    /// [default: 0.2]
    #[arg(long)]
    pub dark_patch_threshold: Option<f64>,
    /// Weight of the pale-patch term, the dark-patch term's mirror: a region
    /// whose blurred brightness rises by more than --pale-patch-threshold
    /// (a washed-out face a critic reads as age) costs [default: 0]
    #[arg(long)]
    pub pale_patch_weight: Option<f64>,
    /// Standard deviation (pixels) of that term's blur [default: 1.5]
    #[arg(long)]
    pub pale_patch_sigma: Option<f64>,
    /// How far the blurred luma (images in [-1, 1]) may rise before it costs
    /// [default: 0.3]
    #[arg(long)]
    pub pale_patch_threshold: Option<f64>,
    /// Weight of the colour-speck term: each pixel whose colour (not
    /// brightness) changes by more than --colour-speck-threshold from input
    /// to output (a speck of purple or green at a hairline) costs for
    /// itself [default: 0]
    #[arg(long)]
    pub colour_speck_weight: Option<f64>,
    /// How far a pixel's colour (images in [-1, 1]) may change before it
    /// costs [default: 0.1]
    #[arg(long)]
    pub colour_speck_threshold: Option<f64>,
    /// A discriminator without the auxiliary age-classification head: the
    /// target age reaches G only through D's projection conditioning and
    /// the synthetic pairs (the age term is off).
    #[arg(long)]
    pub no_aux_classifier: bool,
    /// Show D the synthetic target images as real faces too.
    #[arg(long)]
    pub d_on_synthetic: bool,
    #[command(flatten)]
    pub real: RealFaceArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `agesynth train facegan`.
pub fn train_facegan(a: FaceGanArgs) -> anyhow::Result<ExitCode> {
    let (device, run, has_checkpoint) = open_run(&a.run)?;
    // A new run's discriminator weights (`--discriminator-init`), read once:
    // the config takes the model's config from them, the task their values.
    let mut d_init = None;
    let cfg: FaceGanTrainConfig = if a.run.resume && run.config_path().is_file() {
        run.load_config()?
    } else {
        let mut model = FaceGanConfig::preset(a.preset.name())?;
        model.bottleneck_age = a.bottleneck.into();
        model.full_res_skip = a.full_res_skip;
        model.residual_space = a.residual_space.into();
        model.change_chroma = a.change_chroma;
        model.validate()?;
        let mut c = FaceGanTrainConfig::new(model, a.batch, a.run.seed);
        c.synthetic_fraction = a.synthetic_fraction;
        if let Some(lr) = a.lr {
            c.g_lr = lr;
            c.d_lr = lr;
        }
        if let Some(g) = a.r1_gamma {
            c.r1_gamma = g;
        }
        if let Some(w) = a.age_weight {
            c.weights.age = w;
        }
        if let Some(w) = a.cycle_weight {
            c.weights.cycle = w;
        }
        if let Some(w) = a.tv_weight {
            c.weights.total_variation = w;
        }
        if let Some(w) = a.chroma_weight {
            c.weights.chroma_change = w;
        }
        if let Some(w) = a.sharp_change_weight {
            c.weights.sharp_change = w;
        }
        if let Some(s) = a.sharp_change_sigma {
            c.sharp_change_sigma = s;
        }
        if let Some(w) = a.dark_patch_weight {
            c.weights.dark_patch = w;
        }
        if let Some(w) = a.colour_speck_weight {
            c.weights.colour_speck = w;
        }
        if let Some(t) = a.colour_speck_threshold {
            c.colour_speck_threshold = t;
        }
        if let Some(s) = a.dark_patch_sigma {
            c.dark_patch_sigma = s;
        }
        if let Some(t) = a.dark_patch_threshold {
            c.dark_patch_threshold = t;
        }
        if let Some(w) = a.pale_patch_weight {
            c.weights.pale_patch = w;
        }
        if let Some(s) = a.pale_patch_sigma {
            c.pale_patch_sigma = s;
        }
        if let Some(t) = a.pale_patch_threshold {
            c.pale_patch_threshold = t;
        }
        if a.no_aux_classifier {
            c.model.d_aux_classifier = false;
            c.weights.age = 0.0;
        }
        c.d_on_synthetic = a.d_on_synthetic;
        if let Some(w) = a.identity_weight {
            c.weights.identity = w;
        }
        if let Some(w) = a.identity_old_weight {
            c.weights.identity_old = w;
            c.old_age_critic_from = a.old_age_critic_from;
        }
        if let Some(w) = a.identity_young_weight {
            c.weights.identity_young = w;
            c.identity_young_below = a.identity_young_below;
        }
        if a.no_identity {
            c.weights.identity_old = 0.0;
            c.weights.identity_young = 0.0;
        }
        if let Some(w) = a.gender_keep_weight {
            c.weights.gender_keep = w;
            c.gender_keep_from = a.gender_keep_from;
        }
        if let Some(p) = a.gender_keep_satisfied {
            c.gender_keep_satisfied = p;
        }
        if let Some(w) = a.realism_weight {
            c.weights.realism = w;
            c.realism_from = a.realism_from;
        }
        if let Some(l) = a.realism_satisfied {
            c.realism_satisfied = l;
        }
        if let Some(w) = a.age_critic_weight {
            c.weights.age_critic = w;
        }
        if let Some(b) = a.age_critic_blur {
            c.age_critic_blur = b;
        }
        if a.age_critic_luma {
            c.age_critic_luma = true;
        }
        if let Some(p) = a.age_critic_satisfied {
            c.age_critic_satisfied = p;
        }
        if let Some(b) = a.identity_blur {
            c.identity_blur = b;
        }
        if a.identity_luma {
            c.identity_luma = true;
        }
        if let Some(p) = a.grey_prob {
            c.grey_prob = p;
        }
        if let Some(w) = a.adv_weight {
            c.weights.adversarial = w;
        }
        if let Some(lr) = a.d_lr {
            c.d_lr = lr;
        }
        if let Some(w) = a.d_wrong_age {
            c.d_wrong_age = w;
        }
        if let Some(w) = a.self_rec_weight {
            c.weights.self_reconstruction = w;
        }
        if let Some(w) = a.syn_rec_weight {
            c.weights.synthetic_reconstruction = w;
        }
        if let Some(p) = a.own_group_prob {
            c.targets.own_group = Some(p);
            c.targets.min_distance = a.min_target_distance.unwrap_or(1);
        } else if a.min_target_distance.is_some() {
            bail!("--min-target-distance needs --own-group-prob");
        }
        if let Some(k) = a.synthetic_targets_from {
            c.targets.synthetic_from = Some(k);
        }
        if let Some(k) = a.own_group_below {
            if a.own_group_prob.is_none() {
                bail!("--own-group-below needs --own-group-prob");
            }
            c.targets.own_group_below = Some(k);
        }
        if a.cycle_away_only {
            c.cycle_rows = agesynth_train::Rows::RealAwayFromSource;
        }
        let weights_dir = agesynth_pipeline::weights::default_weights_dir();
        if c.weights.age_critic > 0.0 {
            c.sources.age_critic = Some(
                a.age_critic
                    .clone()
                    .unwrap_or_else(|| weights_dir.join(AGE_CRITIC_WEIGHTS)),
            );
        }
        if let (Some(p), Some(w)) = (&a.old_age_critic, a.old_age_critic_weight) {
            c.weights.old_age_critic = w;
            c.old_age_critic_from = a.old_age_critic_from;
            c.sources.old_age_critic = Some(p.clone());
        }
        if let (Some(p), Some(w)) = (&a.oldest_age_critic, a.oldest_age_critic_weight) {
            c.weights.oldest_age_critic = w;
            c.oldest_age_critic_from = a.oldest_age_critic_from;
            c.sources.oldest_age_critic = Some(p.clone());
        }
        if !a.no_identity
            && (c.weights.identity > 0.0
                || c.weights.identity_old > 0.0
                || c.weights.identity_young > 0.0)
        {
            c.sources.identity = match (&a.identity_weights, &a.identity_critic) {
                (Some(dlib), _) => Some(dlib.clone()),
                (None, Some(critic)) => Some(critic.clone()),
                (None, None) => {
                    let p = weights_dir.join(IDENTITY_CRITIC_WEIGHTS);
                    p.is_file().then_some(p)
                }
            };
        }
        c.sources.init_generator = a.init_generator.clone();
        c.sources.pair_gender_critic = a.pair_gender_critic.clone();
        c.sources.realism_critic = a.realism_critic.clone();
        if let Some(p) = &a.discriminator_init {
            let (d, vars) = agesynth_cstylegan::load_discriminator(p, &device)
                .with_context(|| format!("loading the discriminator {}", p.display()))?;
            c.discriminator = FaceGanDiscriminator::CStyleGan {
                config: Box::new(d.config().clone()),
            };
            c.sources.discriminator_init = Some(p.clone());
            d_init = Some((p.clone(), vars));
        }
        c
    };
    let size = cfg.model.image_size;
    let bins = cfg.model.bins()?;

    let real = if cfg.real_per_step() > 0 {
        let data = a
            .data
            .as_ref()
            .context("--data (UTKFace) is needed unless --synthetic-fraction is 1")?;
        let faces = load_real_faces(data, size, &bins, &a.real, &a.run.out)?;
        Some(Arc::new(faces))
    } else {
        None
    };
    let pairs = if cfg.synthetic_per_step() > 0 {
        let p = a
            .pairs
            .as_ref()
            .context("--pairs is needed unless --synthetic-fraction is 0")?;
        let sp = SynthPairs::open(p).with_context(|| format!("opening {}", p.display()))?;
        eprintln!(
            "{} synthetic identities from {}",
            sp.identities(),
            p.display()
        );
        Some(Arc::new(sp))
    } else {
        None
    };
    let gender_critic = match &cfg.sources.pair_gender_critic {
        Some(p) => {
            let (critic, _) = agesynth_train::critic::load_gender_critic(p, &device)
                .with_context(|| format!("loading the gender critic {}", p.display()))?;
            Some((p.clone(), Arc::new(critic)))
        }
        None => None,
    };
    let synthetic_genders = match (&gender_critic, &pairs) {
        (Some((p, critic)), Some(sp)) => {
            let g = agesynth_train::pairs::identity_genders(sp, critic, 1, 0.1, &device)
                .with_context(|| format!("reading the genders of {}", sp.dir().display()))?;
            let count = |want| g.iter().filter(|&&x| x == want).count();
            eprintln!(
                "synthetic genders by {}: {} female, {} male, {} unsure",
                p.display(),
                count(Some(agesynth_core::Gender::Female)),
                count(Some(agesynth_core::Gender::Male)),
                count(None)
            );
            Some(g)
        }
        _ => None,
    };
    let embedder: Option<Box<dyn FaceEmbedder>> = match &cfg.sources.identity {
        None => {
            eprintln!("no identity network: the identity term is off");
            None
        }
        Some(p) if is_dlib_weights(p) => {
            eprintln!(
                "warning: the identity term uses dlib's network ({}), the evaluation's identity judge: its identity numbers will measure what the generator was trained against",
                p.display()
            );
            let e = DlibFaceEmbedder::load(&EmbedderConfig::default(), p, &device)
                .with_context(|| format!("loading {}", p.display()))?;
            Some(Box::new(e))
        }
        Some(p) => {
            let (c, _) = agesynth_train::critic::load_identity_critic(p, &device)
                .with_context(|| format!("loading the identity critic {}", p.display()))?;
            eprintln!("identity term: the identity critic {}", p.display());
            Some(Box::new(c))
        }
    };
    let age_critic: Option<Arc<dyn AgeClassifier>> = match &cfg.sources.age_critic {
        Some(p) if cfg.weights.age_critic > 0.0 => {
            let (c, _) = agesynth_train::critic::load_age_critic(p, &device)
                .with_context(|| format!("loading the age critic {}", p.display()))?;
            eprintln!("age-critic term: {}", p.display());
            Some(Arc::new(c))
        }
        _ => None,
    };

    let old_age_critic: Option<Arc<dyn AgeClassifier>> = match &cfg.sources.old_age_critic {
        Some(p) if cfg.weights.old_age_critic > 0.0 => {
            let (c, _) = agesynth_train::critic::load_age_critic(p, &device)
                .with_context(|| format!("loading the second age critic {}", p.display()))?;
            let upto = if cfg.weights.oldest_age_critic > 0.0 {
                format!(" to {}", cfg.oldest_age_critic_from.saturating_sub(1))
            } else {
                " up".to_string()
            };
            eprintln!(
                "age-critic term for targets from group {}{upto}: {}",
                cfg.old_age_critic_from,
                p.display()
            );
            Some(Arc::new(c))
        }
        _ => None,
    };

    let oldest_age_critic: Option<Arc<dyn AgeClassifier>> = match &cfg.sources.oldest_age_critic {
        Some(p) if cfg.weights.oldest_age_critic > 0.0 => {
            let (c, _) = agesynth_train::critic::load_age_critic(p, &device)
                .with_context(|| format!("loading the third age critic {}", p.display()))?;
            eprintln!(
                "age-critic term for targets from group {} up: {}",
                cfg.oldest_age_critic_from,
                p.display()
            );
            Some(Arc::new(c))
        }
        _ => None,
    };

    let realism_critic: Option<Arc<dyn RealismCritic>> = match &cfg.sources.realism_critic {
        Some(p) if cfg.weights.realism > 0.0 => {
            let (d, _) = agesynth_cstylegan::load_discriminator(p, &device)
                .with_context(|| format!("loading the realism critic {}", p.display()))?;
            if d.config().image_size != cfg.model.image_size {
                bail!(
                    "the realism critic {} judges {} px faces, this FaceGAN makes {} px ones",
                    p.display(),
                    d.config().image_size,
                    cfg.model.image_size
                );
            }
            eprintln!(
                "realism term for targets from group {} up (satisfied at logit {}): {}",
                cfg.realism_from,
                cfg.realism_satisfied,
                p.display()
            );
            Some(Arc::new(d))
        }
        _ => None,
    };

    if !has_checkpoint {
        run.save_config(&cfg)?;
    }
    let init = cfg.sources.init_generator.clone();
    let mut task = FaceGanTask::new(cfg, real, pairs, embedder, &device)?;
    if let Some(c) = age_critic {
        task = task.with_age_critic(c)?;
    }
    if let Some(c) = old_age_critic {
        task = task.with_old_age_critic(c)?;
    }
    if let Some(c) = oldest_age_critic {
        task = task.with_oldest_age_critic(c)?;
    }
    if let Some(g) = synthetic_genders {
        task = task.with_synthetic_genders(g)?;
    }
    if let (Some((p, c)), true) = (gender_critic, task.config().weights.gender_keep > 0.0) {
        eprintln!(
            "gender-keeping term for targets from group {} up: {}",
            task.config().gender_keep_from,
            p.display()
        );
        task = task.with_gender_critic(c)?;
    }
    if let Some(c) = realism_critic {
        task = task.with_realism_critic(c)?;
    }
    if !task.trains_discriminator() {
        eprintln!(
            "D is not trained: no generator term reads it (adversarial and D-age weights are 0)"
        );
    }
    task.set_shards(a.shards)
        .context("--shards: the generator step cannot be split")?;
    if a.shards > 1 {
        eprintln!(
            "generator step in {} parallel shards of the batch",
            a.shards
        );
    }
    if let (Some(p), false) = (&init, has_checkpoint) {
        let (_, vars) = agesynth_train::facegan::load_generator(p, &device)
            .with_context(|| format!("loading the initial generator {}", p.display()))?;
        task.init_generator_from(&vars)
            .with_context(|| format!("initialising the generator from {}", p.display()))?;
        eprintln!("generator initialised from {}", p.display());
    }
    if let (Some((p, vars)), false) = (&d_init, has_checkpoint) {
        task.init_discriminator_from(vars)
            .with_context(|| format!("initialising the discriminator from {}", p.display()))?;
        eprintln!("discriminator initialised from {}", p.display());
    }
    run_task(
        &run,
        &a.run,
        a.steps,
        &mut task,
        "generator_ema.safetensors",
        |t, p| t.export_ema(p),
    )
}

/// File name of the shipped age critic in the weights folder.
pub const AGE_CRITIC_WEIGHTS: &str = "critic-age64.safetensors";

/// File name of the shipped identity critic in the weights folder.
pub const IDENTITY_CRITIC_WEIGHTS: &str = "critic-identity64.safetensors";

/// Whether `p` is dlib's face-recognition weights (a file without a critic
/// config sidecar named like the imported network).
fn is_dlib_weights(p: &std::path::Path) -> bool {
    p.file_name().and_then(|n| n.to_str()) == Some(agesynth_face::import::FACE_RECOGNITION_WEIGHTS)
        || (p.is_file() && !agesynth_core::io::sidecar_path(p).is_file())
}
