//! Full-count evaluation of the face networks on UTKFace chips (the counts
//! of the real-data tests are reduced for CI): verification, dlib's age
//! error, and face-api's age error and gender accuracy on the same chips:
//!
//! ```text
//! cargo run --release -p agesynth-face --example face_eval -- \
//!     [DATA_DIR] [N_VERIFY=500] [N_AGE=1000] [EMBED_PADDING=0.25]
//! ```
//!
//! `DATA_DIR` defaults to `$AGESYNTH_DATA`, else `../shared/data`, and must
//! hold `utkface/`. `EMBED_PADDING` is the dlib padding assumed for the
//! recognition chip (0.25 is dlib's; 0.2 means "resize the whole UTKFace
//! chip").

use std::path::{Path, PathBuf};

use agesynth_core::candle_core::Device;
use agesynth_face::{
    eval, AgeConfig, AgeGenderConfig, DlibAgeEstimator, DlibFaceEmbedder, EmbedderConfig,
    FaceApiAgeGender,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = match args.first() {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("AGESYNTH_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/data")),
    };
    let n_verify: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(500);
    let n_age: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let padding: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(0.25);
    let utk = eval::Utk::open(&data.join("utkface"))?;
    let dev = Device::Cpu;
    let cfg = EmbedderConfig {
        chip_padding: padding,
        ..EmbedderConfig::default()
    };
    let emb = DlibFaceEmbedder::load(
        &cfg,
        &root.join("weights/face_recognition.safetensors"),
        &dev,
    )?;
    let t = std::time::Instant::now();
    let r = eval::verification(&emb, &utk, n_verify, 7, &dev)?;
    println!("{r}  [{:.1} s]", t.elapsed().as_secs_f64());
    let est = DlibAgeEstimator::load(
        &AgeConfig::default(),
        &root.join("weights/age.safetensors"),
        &dev,
    )?;
    let t = std::time::Instant::now();
    let r = eval::age_mae(&est, &utk, n_age, 11, &dev)?;
    print!("{r}");
    println!("  [{:.1} s]", t.elapsed().as_secs_f64());
    // face-api's age-gender net on the same chips.
    let net = FaceApiAgeGender::load(
        &AgeGenderConfig::default(),
        &root.join("weights/age_gender.safetensors"),
        &dev,
    )?;
    let t = std::time::Instant::now();
    let r = eval::age_gender(&net, &utk, n_age, 11, &dev)?;
    println!("face-api age-gender:");
    print!("{r}");
    println!("  [{:.1} s]", t.elapsed().as_secs_f64());
    Ok(())
}
