//! Samples the age-conditioned StyleGAN: a few random identities, each
//! rendered at every age group, as one grid PNG (rows are latents, columns
//! the age groups, youngest first).
//!
//! Loading is the crate's usual pattern: the config comes from the JSON
//! sidecar beside the weights (`<weights>.json`), the [`Generator`] is built
//! over a `VarMap`, and `agesynth_core::io::load_varmap` fills it from the
//! safetensors file (converting the shipped f16 to f32). The file holds the
//! parameters and the buffer `w_avg`, the generator's running mean of `w`
//! per age group, which the truncation trick pulls each `w` towards; a file
//! without it does not load. (A generator that never tracked it can get one
//! from [`Generator::compute_w_avg`], which needs the `VarMap`-backed
//! generator built here.)
//!
//! Each row keeps its latent and its noise across the columns
//! ([`Noise::Seeded`] with one seed gives the same noise for the same batch
//! size), so a row shows one identity at six ages.
//!
//! ```text
//! cargo run --release -p agesynth-cstylegan --example sample -- \
//!     weights/cstylegan-cpu64.safetensors samples.png [SEED=1]
//! ```

use std::io::Cursor;

use agesynth_core::io;
use agesynth_cstylegan::{seeded_latents, CStyleGanConfig, GenerateOptions, Generator, Noise};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use image::{imageops, ImageFormat, Rgb, RgbImage};

/// Identities (rows) in the grid.
const ROWS: usize = 4;
/// Truncation ψ: 1 is none, 0 each group's mean face.
const PSI: f64 = 0.7;
/// White space between tiles, in pixels.
const GAP: u32 = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (weights, out) = match args.as_slice() {
        [w, o] | [w, o, _] => (w, o),
        _ => return Err("usage: sample <weights.safetensors> <out.png> [seed]".into()),
    };
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let device = Device::Cpu;

    let cfg: CStyleGanConfig = io::load_json(io::sidecar_path(weights))?;
    let vars = VarMap::new();
    let generator = Generator::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &device))?;
    io::load_varmap(&vars, weights)?; // parameters and the w_avg buffer

    let bins = cfg.bins()?;
    let s = cfg.image_size as u32;
    let (cols, rows) = (bins.len() as u32, ROWS as u32);
    let mut grid = RgbImage::from_pixel(
        GAP + cols * (s + GAP),
        GAP + rows * (s + GAP),
        Rgb([255, 255, 255]),
    );
    let z = seeded_latents(ROWS, cfg.z_dim, seed, &device)?;
    let opts = GenerateOptions {
        truncation: PSI,
        mixing: None,
        noise: Noise::Seeded(seed),
        age_free_layers: 0,
    };
    for (col, group) in bins.groups().enumerate() {
        // Every latent at this group: (ROWS, 3, S, S), roughly in [-1, 1].
        let images = generator.forward(&z, &[group; ROWS], &opts)?;
        io::ensure_finite_output(&images, "the cStyleGAN generator")?;
        let bytes = ((images.clamp(-1f32, 1f32)?.permute((0, 2, 3, 1))? + 1.0)? * 127.5)?
            .round()?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        for (row, px) in bytes.chunks_exact((s * s * 3) as usize).enumerate() {
            let tile = RgbImage::from_raw(s, s, px.to_vec()).ok_or("tile of the wrong size")?;
            let (x, y) = (GAP + col as u32 * (s + GAP), GAP + row as u32 * (s + GAP));
            imageops::replace(&mut grid, &tile, x.into(), y.into());
        }
    }
    let mut encoded = Cursor::new(Vec::new());
    grid.write_to(&mut encoded, ImageFormat::Png)?;
    io::atomic_write_bytes(out, encoded.get_ref())?;
    let labels: Vec<String> = bins.groups().map(|g| bins.label(g)).collect();
    println!(
        "{ROWS} identities (seed {seed}, psi {PSI}) x groups {}: {out}",
        labels.join(", ")
    );
    Ok(())
}
