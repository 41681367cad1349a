//! Ages every face of a photo to 10, 30, 50 and 70 with the library call
//! the `agesynth age` command makes, and writes one PNG per age and a
//! labelled strip.
//!
//! ```sh
//! cargo run --release --example age_photo -- photo.jpg [OUT_DIR] [FACEGAN_WEIGHTS]
//! ```
//!
//! The networks come from the default weights folder (`$AGESYNTH_WEIGHTS`,
//! else `./weights`, else the repository's `weights/`); the optional third
//! argument names another FaceGAN generator (a weights file with its `.json`
//! sidecar, a checkpoint or a run folder).

use std::path::PathBuf;

use agesynth::pipeline::{output::output_stem, weights, Ager, AgerOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let Some(photo) = args.next() else {
        anyhow::bail!("usage: age_photo PHOTO [OUT_DIR] [FACEGAN_WEIGHTS]");
    };
    let out = args.next().unwrap_or_else(|| PathBuf::from("aged"));
    let dir = weights::default_weights_dir();
    let facegan = args
        .next()
        .unwrap_or_else(|| dir.join(weights::FACEGAN_WEIGHTS));

    let device = agesynth::core::candle_core::Device::Cpu;
    let ager = Ager::load(&facegan, &dir, &device, AgerOptions::default())?;
    let t0 = std::time::Instant::now();
    let aged = ager.age_file(&photo, &[10.0, 30.0, 50.0, 70.0])?;
    let elapsed = t0.elapsed();
    for (i, face) in aged.faces.iter().enumerate() {
        let est = face
            .estimated_age
            .map(|a| format!("{a:.0}"))
            .unwrap_or_else(|| "?".into());
        println!(
            "face {i}: box {:?}, score {:.3}, estimated age {est}",
            face.bbox.map(|v| v.round()),
            face.score
        );
    }
    for t in &aged.targets {
        println!("target {} -> group {}", t.age_text(), t.label);
    }
    let saved = aged.save(&out, &output_stem(&photo))?;
    for p in saved.all() {
        println!("wrote {}", p.display());
    }
    println!("aged in {:.2} s", elapsed.as_secs_f64());
    Ok(())
}
