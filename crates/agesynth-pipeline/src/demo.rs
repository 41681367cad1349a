//! `agesynth demo`: ageing without any input photo. A synthetic identity is
//! rendered by the cStyleGAN at one source age group, FaceGAN ages it to
//! every target, and the result is a labelled strip; a second row shows the
//! cStyleGAN's own rendering of the same latent at each target's group.

use std::path::Path;

use agesynth_core::{AgeGroup, FaceImage};
use agesynth_cstylegan::{seeded_latents, Generator as StyleGenerator};
use agesynth_data::transform::resize;
use candle_core::Device;

use crate::ager::{field_to_image, FaceAger, Target};
use crate::error::{PipelineError, Result};

/// Options of [`demo_strip`].
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// Seed of the identity's latent and of the cStyleGAN's noise.
    pub seed: u64,
    /// Truncation ψ of the cStyleGAN (1: none; lower: more typical faces).
    pub truncation: f64,
    /// Age whose group the identity is rendered at before ageing.
    pub source_age: f32,
    /// Target ages.
    pub ages: Vec<f32>,
    /// Side of each tile in the strip (the 64-pixel faces are enlarged).
    pub tile: u32,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 7,
            truncation: 0.7,
            source_age: 25.0,
            ages: vec![10.0, 30.0, 50.0, 70.0],
            tile: 192,
        }
    }
}

/// What [`demo_strip`] made.
#[derive(Clone, Debug)]
pub struct Demo {
    /// The labelled strip.
    pub strip: FaceImage,
    /// The identity at the source group (the generator's input).
    pub source: FaceImage,
    /// The source group's label.
    pub source_label: String,
    /// The targets with their groups.
    pub targets: Vec<Target>,
    /// FaceGAN's output at each target.
    pub aged: Vec<FaceImage>,
}

/// Loads the cStyleGAN generator at `path` (weights with their `.json`
/// sidecar) through [`agesynth_cstylegan::load_generator`].
pub fn load_cstylegan(path: &Path, device: &Device) -> Result<StyleGenerator> {
    agesynth_cstylegan::load_generator(path, device)
        .map(|(g, _)| g)
        .map_err(|e| PipelineError::Weights {
            what: "cStyleGAN generator",
            path: path.to_path_buf(),
            source: Box::new(e),
        })
}

/// Renders the demo (see the module docs).
pub fn demo_strip(style: &StyleGenerator, ager: &FaceAger, opts: &DemoOptions) -> Result<Demo> {
    let targets = ager.targets(&opts.ages)?;
    let style_bins = style.config().bins()?;
    let source_group = style_bins
        .group(opts.source_age)
        .map_err(|e| PipelineError::TargetAge(e.to_string()))?;
    let device = style.w_avg().device().clone();
    let z = seeded_latents(1, style.config().z_dim, opts.seed, &device)?;
    let all = agesynth_cstylegan::render_all_groups(style, &z, opts.truncation, opts.seed)
        .map_err(|e| PipelineError::Weights {
            what: "cStyleGAN rendering",
            path: Path::new("<cstylegan>").to_path_buf(),
            source: Box::new(e),
        })?; // (1, G, 3, S, S)
    let (_, g, c, h, w) = all.dims5()?;
    let rendered = agesynth_core::batch::tensor_to_images(&all.reshape((g, c, h, w))?)?;
    let s = ager.chip_size();
    let source = rendered[source_group.0.min(g - 1)].clone();
    let input = if (source.width(), source.height()) == (s, s) {
        source.clone()
    } else {
        resize(&source, s, s)?
    };
    let aged: Vec<FaceImage> = ager
        .age_chips(std::slice::from_ref(&input), &targets)?
        .remove(0)
        .iter()
        .map(field_to_image)
        .collect::<Result<_>>()?;

    let big = |img: &FaceImage| resize(img, opts.tile, opts.tile);
    let source_label = style_bins.label(source_group);
    let mut tiles = vec![big(&source)?];
    let mut captions = vec![format!("input: cstylegan {source_label}")];
    for (img, t) in aged.iter().zip(&targets) {
        tiles.push(big(img)?);
        captions.push(format!("facegan {}", t.caption()));
    }
    // Second row: the cStyleGAN's own rendering at each target's group.
    tiles.push(big(&source)?);
    captions.push(format!("cstylegan {source_label}"));
    for t in &targets {
        let sg = style_bins
            .group(t.age)
            .unwrap_or(AgeGroup(style_bins.len() - 1));
        tiles.push(big(&rendered[sg.0.min(g - 1)])?);
        captions.push(format!("cstylegan {}", style_bins.label(sg)));
    }
    let strip = agesynth_data::draw::strip(&tiles, targets.len() + 1, &captions)?;
    Ok(Demo {
        strip,
        source,
        source_label,
        targets,
        aged,
    })
}
