//! Loads a face dataset the way a trainer does: decode once into the
//! memory-mapped cache, hold the faces in memory at the training size, then
//! draw shuffled, flipped batches in a resumable order, and report what came
//! out and how fast.
//!
//! ```sh
//! cargo run --release --example load_faces -- ../shared/data/utkface 64
//! ```

use std::{path::PathBuf, time::Instant};

use agesynth::core::{candle_core::Device, AgeBins};
use agesynth::data::{stats::AnyDataset, DataOrder, DecodedCache, RealFaces};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/data/utkface".to_string()),
    );
    let size: u32 = match args.next() {
        Some(s) => s.parse()?,
        None => 64,
    };

    let data = AnyDataset::open(&dir, None)?;
    println!(
        "{}: {} faces ({:?}), {} files skipped",
        dir.display(),
        data.as_dataset().len(),
        data.kind(),
        data.skipped().len()
    );

    let cache_path = std::env::temp_dir().join(format!("agesynth-example-{size}.cache"));
    let t = Instant::now();
    let (cache, built) = DecodedCache::open_or_build(
        data.as_dataset(),
        size,
        &cache_path,
        &dir.display().to_string(),
        0,
    )?;
    println!(
        "cache {} {} in {:.1} s",
        cache_path.display(),
        if built { "built" } else { "opened" },
        t.elapsed().as_secs_f64()
    );

    let bins = AgeBins::default();
    let t = Instant::now();
    let faces = RealFaces::load(&cache, size, &bins, None)?;
    println!(
        "{} faces in memory ({} skipped) in {:.1} s",
        faces.len(),
        faces.skipped().len(),
        t.elapsed().as_secs_f64()
    );
    let mut order = DataOrder::new(faces.len(), 0);
    let t = Instant::now();
    let mut per_group = vec![0usize; bins.len()];
    let mut images = 0;
    for step in 0..100 {
        let batch = faces.next_batch(&mut order, 64, true, step, &Device::Cpu)?;
        images += batch.len();
        for g in &batch.groups {
            per_group[g.index()] += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{images} images in {secs:.2} s: {:.0} images/s",
        images as f64 / secs
    );
    for g in bins.groups() {
        println!("  {:>6}: {}", bins.label(g), per_group[g.index()]);
    }
    Ok(())
}
