//! Ages one already aligned face chip with the FaceGAN generator alone.
//!
//! The whole of inference without the pipeline crate: read the config
//! sidecar (`<weights>.json`), build the [`Generator`] over a `VarMap`, load
//! the weights into it, turn the image into the tensor the generator takes
//! (`(1, 3, S, S)` f32 in `[-1, 1]`), generate at the age group holding the
//! target age, and write the output chip as a PNG.
//!
//! The chip must be framed the way the generator was trained: like a
//! UTKFace "aligned & cropped" chip (dlib's five-point alignment, padding
//! 0.2). A UTKFace chip works as it is; for an ordinary photo use
//! `agesynth age` (or `agesynth_pipeline::Ager`), which detects, aligns and
//! pastes the face back. A non-square image is centre-cropped to a square,
//! then resized to the model's `image_size`.
//!
//! ```text
//! cargo run --release -p agesynth-facegan --example age_chip -- \
//!     weights/facegan-cpu64.safetensors chip.png 60 aged.png
//! ```
//!
//! The shipped weights are stored in f16; `load_varmap` converts them to the
//! f32 the generator computes in.

use std::io::Cursor;

use agesynth_core::io;
use agesynth_facegan::{FaceGanConfig, Generator};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::{imageops, ImageFormat, RgbImage};

const USAGE: &str = "usage: age_chip <weights.safetensors> <chip.png> <target-age-years> <out.png>";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [weights, chip, age, out] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let device = Device::Cpu;

    // The model: its config from the sidecar, its weights from the file
    // (every variable must be there, with its shape; f16 becomes f32).
    let cfg: FaceGanConfig = io::load_json(io::sidecar_path(weights))?;
    let vars = VarMap::new();
    let generator = Generator::new(&cfg, VarBuilder::from_varmap(&vars, DType::F32, &device))?;
    io::load_varmap(&vars, weights)?;

    // The chip: centre square, resized to the model's size, then HWC bytes
    // -> NCHW f32 in [-1, 1].
    let img = image::open(chip)
        .map_err(|e| format!("{chip}: {e}"))?
        .to_rgb8();
    let side = img.width().min(img.height());
    let (x0, y0) = ((img.width() - side) / 2, (img.height() - side) / 2);
    let square = imageops::crop_imm(&img, x0, y0, side, side).to_image();
    let s = cfg.image_size;
    let small = imageops::resize(&square, s as u32, s as u32, imageops::FilterType::Triangle);
    let input = Tensor::from_vec(small.into_raw(), (s, s, 3), &device)?
        .permute((2, 0, 1))?
        .to_dtype(DType::F32)?
        .affine(1.0 / 127.5, -1.0)?
        .unsqueeze(0)?;

    // A target age is never given to the network: it takes the age group
    // that holds it.
    let bins = cfg.bins()?;
    let group = bins.group(age.parse::<f32>()?)?;
    let aged = generator.forward(&input, &[group])?;
    io::ensure_finite_output(&aged, "the FaceGAN generator")?;

    // Back to 8-bit RGB: (1, 3, S, S) in (-1, 1) -> (S, S, 3) bytes.
    let bytes = ((aged.squeeze(0)?.permute((1, 2, 0))? + 1.0)? * 127.5)?
        .round()?
        .clamp(0f32, 255f32)?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    let png = RgbImage::from_raw(s as u32, s as u32, bytes).ok_or("output of the wrong size")?;
    let mut encoded = Cursor::new(Vec::new());
    png.write_to(&mut encoded, ImageFormat::Png)?;
    io::atomic_write_bytes(out, encoded.get_ref())?;
    println!("age {age} (group {}): {out}", bins.label(group));
    Ok(())
}
