//! Loads a face dataset the way a trainer does: decode once into the
//! memory-mapped cache, then stream age-balanced, augmented batches through the
//! prefetching loader, and report what came out and how fast.
//!
//! ```sh
//! cargo run --release --example load_faces -- ../shared/data/utkface 64
//! ```

use std::{path::PathBuf, sync::Arc, time::Instant};

use agesynth::core::AgeBins;
use agesynth::data::{sampler::Order, stats::AnyDataset, BatchLoader, DecodedCache, LoaderConfig};

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
    let loader = BatchLoader::all(
        Arc::new(cache),
        LoaderConfig {
            batch_size: 64,
            image_size: size,
            order: Order::Balanced,
            bins: bins.clone(),
            ..Default::default()
        },
    )?;
    let t = Instant::now();
    let mut per_group = vec![0usize; bins.len()];
    let mut images = 0;
    for batch in loader.epoch(0).take(100) {
        let batch = batch?;
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
