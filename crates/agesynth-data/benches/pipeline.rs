//! Throughput of the data pipeline, in faces per second, on 2 threads:
//!
//! - `decode/{64,128}`: read + decode a 200×200 JPEG chip, area-resize to
//!   the size, normalise to `[-1, 1]` (real UTKFace chips when the shared
//!   data folder is present, else generated JPEGs of the same size);
//! - `cache/64`: the same faces read from the memory-mapped decoded cache
//!   and normalised;
//! - `memory/batch64`: whole training batches of 64 (shuffled, flipped, as
//!   tensors) from faces held in memory ([`RealFaces`], loaded once from the
//!   cache), the trainers' data path.
//!
//! Targets: ≥ 1,000 faces/s decoded to 64×64, ≥ 20,000 faces/s from the
//! cache. Results go in BENCHMARKS.md.

use std::{path::Path, sync::Arc};

use agesynth_core::AgeBins;
use agesynth_core::{FaceDataset, FaceImage, FaceMeta, Result};
use agesynth_data::{
    testing::{shared_data_dir, synthetic_face, write_jpeg},
    transform::normalise_into,
    DataOrder, DecodedCache, RealFaces, UtkFace,
};
use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rayon::prelude::*;

const THREADS: usize = 2;
const DECODE_FACES: usize = 256;
const CACHE_FACES: usize = 4096;

/// Some faces of a dataset, by index.
struct Pick {
    inner: Arc<dyn FaceDataset>,
    map: Vec<usize>,
}

impl FaceDataset for Pick {
    fn len(&self) -> usize {
        self.map.len()
    }
    fn meta(&self, i: usize) -> Option<&FaceMeta> {
        self.inner.meta(*self.map.get(i)?)
    }
    fn load(&self, i: usize, size: u32) -> Result<FaceImage> {
        self.inner.load(self.map[i], size)
    }
}

/// The whole source: UTKFace (when the shared data folder is present) or
/// 256 generated 200×200 JPEGs named like UTKFace chips in `tmp`.
fn source(tmp: &Path) -> (Arc<dyn FaceDataset>, &'static str) {
    if let Some(dir) = shared_data_dir().map(|d| d.join("utkface")) {
        if let Ok(ds) = UtkFace::open(&dir) {
            if ds.len() >= CACHE_FACES {
                return (Arc::new(ds), "UTKFace chips");
            }
        }
    }
    let dir = tmp.join("generated");
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..DECODE_FACES {
        let name = format!("{}_{}_0_2017{k:013}.jpg.chip.jpg", 1 + k % 90, k % 2);
        write_jpeg(dir.join(name), &synthetic_face(200, 200, k as u64)).unwrap();
    }
    (Arc::new(UtkFace::open(&dir).unwrap()), "generated JPEGs")
}

/// `n` faces spread evenly over `ds` (repeating when it has fewer).
fn spread(ds: &Arc<dyn FaceDataset>, n: usize) -> Pick {
    let len = ds.len();
    let map = if len >= n {
        (0..n).map(|k| k * (len / n)).collect()
    } else {
        (0..n).map(|k| k % len).collect()
    };
    Pick {
        inner: ds.clone(),
        map,
    }
}

fn decode_and_normalise(
    pool: &rayon::ThreadPool,
    ds: &dyn FaceDataset,
    n: usize,
    size: u32,
) -> f32 {
    pool.install(|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                let img = ds.load(i % ds.len(), size).unwrap();
                let mut out = vec![0f32; 3 * (size * size) as usize];
                normalise_into(&img, &mut out).unwrap();
                out[0]
            })
            .sum()
    })
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (all, what) = source(tmp.path());
    let ds = spread(&all, DECODE_FACES);
    eprintln!("benchmarks use {what}");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .unwrap();

    let mut g = c.benchmark_group("decode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(DECODE_FACES as u64));
    for size in [64u32, 128] {
        g.bench_function(format!("{size}"), |b| {
            b.iter(|| decode_and_normalise(&pool, &ds, DECODE_FACES, size))
        });
    }
    g.finish();

    let cache_path = tmp.path().join("cache64.bin");
    let cached = spread(&all, CACHE_FACES);
    let cache = Arc::new(DecodedCache::build(&cached, 64, &cache_path, "bench", THREADS).unwrap());
    let mut g = c.benchmark_group("cache");
    g.sample_size(20);
    g.throughput(Throughput::Elements(CACHE_FACES as u64));
    g.bench_function("64", |b| {
        b.iter(|| decode_and_normalise(&pool, cache.as_ref(), CACHE_FACES, 64))
    });
    g.finish();

    let bins = AgeBins::default();
    let faces = RealFaces::load(cache.as_ref(), 64, &bins, None).unwrap();
    let mut order = DataOrder::new(faces.len(), 1);
    let batches = faces.len() / 64;
    let mut g = c.benchmark_group("memory");
    g.sample_size(20);
    g.throughput(Throughput::Elements((batches * 64) as u64));
    let mut step = 0u64;
    g.bench_function("batch64", |b| {
        b.iter(|| {
            (0..batches)
                .map(|_| {
                    step += 1;
                    let batch = faces
                        .next_batch(&mut order, 64, true, step, &Device::Cpu)
                        .unwrap();
                    batch.len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
