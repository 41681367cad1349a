//! Fuzzing on stable Rust (issue 17): every parser that reads bytes from
//! outside — photo decoding and its guards, safetensors weights with their
//! JSON sidecars, UTKFace / FG-NET / CSV names and labels, `.pts` landmark
//! files, the synthetic-pairs index and shards, the decoded cache, a
//! checkpoint's manifest and the training log — is fed mutated real inputs
//! (bit flips, interesting values, truncations, insertions, deletions,
//! splices, numbers swapped for huge or odd ones), and must
//!
//! - never panic;
//! - never allocate more than a bound per case (a counting allocator
//!   measures the peak of every case);
//! - when it refuses an input read from a file, name that file.
//!
//! The seeds are inputs made by agesynth itself (photos, a tiny cStyleGAN
//! and its sidecar, a pairs set, a cache, a checkpoint, a log), the real
//! quirky names of UTKFace and FG-NET, and, where the shared data folder is
//! present, real UTKFace chips, FG-NET photos and `.pts` files.
//!
//! `AGESYNTH_FUZZ_CASES` sets the number of cases (3000 by default, as in
//! CI; a longer budget by hand), `AGESYNTH_FUZZ_SEED` the seed (printed);
//! `AGESYNTH_FUZZ_VERBOSE` prints the cases that come near their bound.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    collections::BTreeMap,
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use agesynth_core::{
    candle_core::{DType, Device, Tensor},
    FaceDataset,
};
use agesynth_cstylegan::{CStyleGanConfig, Generator};
use agesynth_data::{
    testing::{synthetic_face, write_grey_jpeg, write_jpeg, write_png},
    transform::DecodeLimits,
    CsvFolder, DecodedCache, UtkFace,
};
use agesynth_train::{
    checkpoint::CheckpointContents, cstylegan::SynthPairsOptions, RunDir, SynthPairs,
};

// ---------------------------------------------------------------------------
// A counting allocator: the peak of live bytes allocated by this thread.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get().wrapping_add(delta);
        l.set(v);
        let _ = PEAK.try_with(|p| {
            if v > p.get() {
                p.set(v)
            }
        });
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping touches only thread-local cells without destructors.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            account(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(p, l) };
        account(-(l.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's pointer, layout and size.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            account(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the most bytes it held at once.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, (peak - base).max(0) as usize)
}

// ---------------------------------------------------------------------------
// Mutations.

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1e30",
    "NaN",
    "inf",
    "18446744073709551616",
    "4294967295",
    "9999999999999",
    "65535",
    "-0",
    "1.5",
    "\"x\"",
    "null",
    "[]",
    "{}",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        // Half the edits land in the first 512 bytes, where headers are.
        let pos = |rng: &mut Rng, len: usize| {
            if len == 0 {
                0
            } else if rng.below(2) == 0 {
                rng.below(len.min(512))
            } else {
                rng.below(len)
            }
        };
        match rng.below(if text { 10 } else { 9 }) {
            0 if !v.is_empty() => {
                let i = pos(rng, v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = pos(rng, v.len());
                v[i] = [0u8, 1, 0x7f, 0x80, 0xff, 0xfe, b'{', b'"', b'\n'][rng.below(9)];
            }
            2 if v.len() >= 8 => {
                let i = pos(rng, v.len() - 7);
                let val: u64 =
                    [0, u32::MAX as u64, i32::MAX as u64, u64::MAX, 1 << 40][rng.below(5)];
                let n = if rng.below(2) == 0 { 4 } else { 8 };
                v[i..i + n].copy_from_slice(&val.to_le_bytes()[..n]);
            }
            3 => {
                let keep = rng.below(v.len() + 1);
                v.truncate(keep);
            }
            4 if !v.is_empty() => {
                let a = pos(rng, v.len());
                let b = (a + 1 + rng.below(64)).min(v.len());
                v.drain(a..b);
            }
            5 => {
                let at = pos(rng, v.len() + 1).min(v.len());
                let n = 1 + rng.below(32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            6 if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + 1 + rng.below(256)).min(v.len());
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            7 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(512)).min(other.len());
                    let at = pos(rng, v.len() + 1).min(v.len());
                    let end = (at + (b - a)).min(v.len());
                    v.splice(at..end, other[a..b].iter().copied());
                }
            }
            _ if text => {
                // Swap a number (or any token) for an odd one.
                let s = String::from_utf8_lossy(&v).into_owned();
                let digits: Vec<usize> = s
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                if let Some(&i) = digits.get(rng.below(digits.len().max(1))) {
                    let end = s[i..]
                        .find(|c: char| !c.is_ascii_digit() && c != '.')
                        .map_or(s.len(), |e| i + e);
                    let mut t = s[..i].to_string();
                    t.push_str(NUMBERS[rng.below(NUMBERS.len())]);
                    t.push_str(&s[end..]);
                    v = t.into_bytes();
                }
            }
            _ => {
                let at = rng.below(v.len() + 1);
                v.insert(at, rng.next() as u8);
            }
        }
    }
    v
}

// ---------------------------------------------------------------------------
// Targets.

type Run = Box<dyn Fn(&[u8]) -> Result<(), String>>;

struct Target {
    name: &'static str,
    /// Share of the cases.
    weight: usize,
    text: bool,
    seeds: Vec<Vec<u8>>,
    /// A refusal must mention this (the file read), when set.
    names: Option<&'static str>,
    /// Most bytes one case may hold.
    bound: usize,
    run: Run,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn real_files(sub: &str, ext: &str, n: usize) -> Vec<Vec<u8>> {
    let Some(dir) = agesynth_data::testing::shared_data_dir().map(|d| d.join(sub)) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case(ext))
        })
        .collect();
    files.sort();
    files
        .iter()
        .take(n)
        .filter_map(|p| std::fs::read(p).ok())
        .collect()
}

fn targets(root: &Path) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let small = DecodeLimits {
        max_pixels: 4_000_000,
        max_file_bytes: 4 << 20,
        min_side: 1,
    };

    // Photos.
    let img = root.join("seed-img");
    std::fs::create_dir_all(&img).unwrap();
    write_jpeg(img.join("a.jpg"), &synthetic_face(64, 48, 1)).unwrap();
    write_png(img.join("b.png"), &synthetic_face(40, 40, 2)).unwrap();
    write_grey_jpeg(img.join("c.jpg"), 16, 16, &[120u8; 256]).unwrap();
    let mut photos: Vec<Vec<u8>> = ["a.jpg", "b.png", "c.jpg"]
        .iter()
        .map(|n| std::fs::read(img.join(n)).unwrap())
        .collect();
    photos.push(
        agesynth_pipeline::testing::jpeg_with_orientation(&synthetic_face(32, 24, 3), 6).unwrap(),
    );
    photos.extend(real_files("utkface", "jpg", 4));
    photos.extend(real_files("fgnet-dev/images", "jpg", 2));
    out.push(Target {
        name: "photo decoding (JPEG/PNG, EXIF, size and truncation guards)",
        weight: 6,
        text: false,
        seeds: photos.clone(),
        names: Some("fuzz-photo.jpg"),
        bound: 256 << 20,
        run: Box::new(move |b| {
            agesynth_pipeline::input::decode_photo(b, Path::new("fuzz-photo.jpg"), &small)
                .map(|_| ())
                .map_err(|e| chain(&e))
        }),
    });
    out.push(Target {
        name: "image check without decoding (data stats)",
        weight: 2,
        text: false,
        seeds: photos,
        names: Some("fuzz-chip.jpg"),
        bound: 64 << 20,
        run: Box::new(|b| {
            agesynth_data::transform::check_bytes(
                b,
                Path::new("fuzz-chip.jpg"),
                &DecodeLimits::chips(),
            )
            .map(|_| ())
            .map_err(|e| chain(&e))
        }),
    });

    // A tiny cStyleGAN with its sidecar.
    let model_dir = root.join("model");
    std::fs::create_dir_all(&model_dir).unwrap();
    let cfg = CStyleGanConfig::tiny();
    let varmap = fresh_generator(&cfg);
    let g_path = model_dir.join("g.safetensors");
    agesynth_core::io::save_varmap(&varmap, &g_path, &cfg).unwrap();
    let weights = std::fs::read(&g_path).unwrap();
    let sidecar = std::fs::read(model_dir.join("g.json")).unwrap();
    {
        let dir = root.join("t-weights");
        copy_dir(&model_dir, &dir);
        let path = dir.join("g.safetensors");
        out.push(Target {
            name: "safetensors weights (a model's tensors)",
            weight: 4,
            text: false,
            seeds: vec![weights.clone()],
            names: Some("g.safetensors"),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                agesynth_core::io::load_tensors(&path, &Device::Cpu)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }
    {
        let dir = root.join("t-model-weights");
        copy_dir(&model_dir, &dir);
        let path = dir.join("g.safetensors");
        out.push(Target {
            name: "generator loading: weights file mutated",
            weight: 3,
            text: false,
            seeds: vec![weights.clone()],
            names: Some("g.safetensors"),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                agesynth_train::cstylegan::load_generator(&path, &Device::Cpu)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }
    {
        let dir = root.join("t-model-sidecar");
        copy_dir(&model_dir, &dir);
        let (path, side) = (dir.join("g.safetensors"), dir.join("g.json"));
        out.push(Target {
            name: "generator loading: JSON sidecar mutated",
            weight: 4,
            text: true,
            seeds: vec![sidecar.clone()],
            names: Some("g."),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&side, b).unwrap();
                agesynth_train::cstylegan::load_generator(&path, &Device::Cpu)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }

    // A FaceGAN generator's sidecar.
    {
        let dir = root.join("t-facegan");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.safetensors");
        agesynth_pipeline::testing::export_fresh_generator(
            &agesynth_facegan::FaceGanConfig::tiny(),
            0,
            &path,
        )
        .unwrap();
        let side = dir.join("f.json");
        let seed = std::fs::read(&side).unwrap();
        out.push(Target {
            name: "FaceGAN generator loading: JSON sidecar mutated",
            weight: 3,
            text: true,
            seeds: vec![seed],
            names: Some("f."),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&side, b).unwrap();
                agesynth_train::facegan::load_generator(&path, &Device::Cpu)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }

    // Names and text formats.
    let utk_names: Vec<Vec<u8>> = [
        "39_1_20170116174525125.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "55_0_0_20170116232725357jpg.chip.jpg",
        "24_0_1_20170116220224657 .jpg.chip.jpg",
        "1_0_0_20161219140623097.jpg.chip.jpg",
        "116_1_0_20170120134921760.jpg.chip.jpg",
        "26_1_3_20170109150557338.jpg.chip.jpg",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    out.push(Target {
        name: "UTKFace file names",
        weight: 2,
        text: true,
        seeds: utk_names,
        names: None,
        bound: 1 << 20,
        run: Box::new(|b| {
            let _ = agesynth_data::utkface::parse_name(&String::from_utf8_lossy(b));
            Ok(())
        }),
    });
    out.push(Target {
        name: "FG-NET file names",
        weight: 1,
        text: true,
        seeds: ["001A02.JPG", "045a12b.jpg", "082A43.JPG", "010A07a.JPG"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        names: None,
        bound: 1 << 20,
        run: Box::new(|b| {
            let _ = agesynth_data::fgnet::parse_name(&String::from_utf8_lossy(b));
            Ok(())
        }),
    });
    let mut pts = real_files("fgnet-dev/points", "pts", 3);
    if pts.is_empty() {
        let mut t = "version: 1\nn_points: 68\n{\n".to_string();
        for k in 0..68 {
            t.push_str(&format!("{}.5 {}.25\n", 100 + k * 3, 200 + (k * 7) % 50));
        }
        t.push_str("}\n");
        pts.push(t.into_bytes());
    }
    {
        let path = root.join("fuzz.pts");
        out.push(Target {
            name: "FG-NET .pts landmark files",
            weight: 3,
            text: true,
            seeds: pts,
            names: Some("fuzz.pts"),
            bound: 4 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                agesynth_data::fgnet::read_pts(&path)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }
    {
        let dir = root.join("t-csv");
        std::fs::create_dir_all(&dir).unwrap();
        write_jpeg(dir.join("a.jpg"), &synthetic_face(32, 32, 4)).unwrap();
        let path = dir.join("labels.csv");
        let seed = b"file,age,gender\na.jpg,31,f\n\"b, c.jpg\",7,m\nmissing.jpg,45,\n".to_vec();
        out.push(Target {
            name: "CSV labels (file,age[,gender])",
            weight: 2,
            text: true,
            seeds: vec![seed],
            names: Some("labels.csv"),
            bound: 16 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                for line in String::from_utf8_lossy(b).lines() {
                    let _ = agesynth_data::csv_folder::split_csv_line(line);
                }
                match CsvFolder::open(&path) {
                    Ok(ds) => {
                        for i in 0..ds.len() {
                            let _ = ds.load(i, 16);
                        }
                        Ok(())
                    }
                    Err(e) => Err(chain(&e)),
                }
            }),
        });
    }

    // A synthetic-pairs set: index and shards.
    let pairs = root.join("pairs");
    {
        let (g, _) = agesynth_train::cstylegan::load_generator(&g_path, &Device::Cpu).unwrap();
        let opts = SynthPairsOptions {
            count: 3,
            truncation: 1.0,
            seed: 0,
            batch: 3,
            shard_size: 2,
            age_free_layers: 0,
        };
        agesynth_train::cstylegan::synth_pairs(&g, &pairs, &opts, serde_json::json!({}), |_| {})
            .unwrap();
    }
    let open_pairs = |dir: &Path| -> Result<(), String> {
        let sp = SynthPairs::open(dir).map_err(|e| chain(&e))?;
        let size = sp.image_size() as u32;
        for i in 0..sp.len().min(64) {
            let _ = sp.load(i, size);
        }
        Ok(())
    };
    {
        let dir = root.join("t-pairs-index");
        copy_dir(&pairs, &dir);
        let seed = std::fs::read(dir.join("index.json")).unwrap();
        let path = dir.join("index.json");
        out.push(Target {
            name: "synthetic-pairs index.json",
            weight: 3,
            text: true,
            seeds: vec![seed],
            names: Some("t-pairs-index"),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                open_pairs(path.parent().unwrap())
            }),
        });
    }
    {
        let dir = root.join("t-pairs-shard");
        copy_dir(&pairs, &dir);
        let mut shards: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        shards.sort();
        let path = shards[0].clone();
        let seed = std::fs::read(&path).unwrap();
        out.push(Target {
            name: "synthetic-pairs shard (safetensors, memory-mapped)",
            weight: 3,
            text: false,
            seeds: vec![seed],
            names: Some("t-pairs-shard"),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                open_pairs(path.parent().unwrap())
            }),
        });
    }

    // A decoded cache.
    {
        let faces = root.join("utk");
        std::fs::create_dir_all(&faces).unwrap();
        for i in 0..6u64 {
            write_jpeg(
                faces.join(format!("{}_0_1_2017010915055{i}.jpg.chip.jpg", 5 + 11 * i)),
                &synthetic_face(24, 24, i),
            )
            .unwrap();
        }
        let ds = UtkFace::open(&faces).unwrap();
        let path = root.join("t-cache.agscache");
        DecodedCache::build(&ds, 16, &path, "fuzz", 1).unwrap();
        let seed = std::fs::read(&path).unwrap();
        out.push(Target {
            name: "decoded cache file (memory-mapped)",
            weight: 3,
            text: false,
            seeds: vec![seed],
            names: Some("t-cache.agscache"),
            bound: 64 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                let c = DecodedCache::open(&path).map_err(|e| chain(&e))?;
                for i in 0..c.len().min(64) {
                    let _ = c.load(i, 16);
                }
                let _ = c.bad_faces().count();
                Ok(())
            }),
        });
    }

    // A checkpoint's manifest and meta, read by resume and by readers.
    {
        let run_dir = root.join("t-run");
        {
            let run = RunDir::open(&run_dir).unwrap();
            for s in [1u64, 2] {
                let t = Tensor::new(&[s as f32, 2.0], &Device::Cpu).unwrap();
                let c = CheckpointContents::new()
                    .tensors("model", [("w".to_string(), t)].into(), None)
                    .json("data", &serde_json::json!({"epoch": s}))
                    .unwrap();
                run.save_checkpoint(s, &c, &serde_json::json!({"step": s}), 3)
                    .unwrap();
            }
        }
        let manifest = run_dir.join("checkpoints/step-000002/manifest.json");
        let seed = std::fs::read(&manifest).unwrap();
        out.push(Target {
            name: "checkpoint manifest.json (resume, readers)",
            weight: 2,
            text: true,
            seeds: vec![seed],
            names: None,
            bound: 16 << 20,
            run: Box::new(move |b| {
                std::fs::write(&manifest, b).unwrap();
                let run = RunDir::open_read_only(&run_dir).map_err(|e| chain(&e))?;
                let found = run.find_latest().map_err(|e| chain(&e))?;
                // The intact step 1 is always there to fall back to.
                assert!(found.checkpoint.is_some(), "lost the intact checkpoint");
                Ok(())
            }),
        });
    }

    // The training log.
    {
        let path = root.join("log.jsonl");
        let seed = br#"{"step":1,"images":4,"wall_s":0.5,"images_per_s":8.0,"losses":{"d":0.69,"g":0.7}}
{"step":2,"images":8,"wall_s":1.0,"images_per_s":8.0,"losses":{"d":0.68,"g":0.71},"metrics":{"acc":0.5}}
"#
        .to_vec();
        out.push(Target {
            name: "training log (log.jsonl)",
            weight: 1,
            text: true,
            seeds: vec![seed],
            names: Some("log.jsonl"),
            bound: 16 << 20,
            run: Box::new(move |b| {
                std::fs::write(&path, b).unwrap();
                agesynth_train::log::read_log(&path)
                    .map(|_| ())
                    .map_err(|e| chain(&e))
            }),
        });
    }
    out
}

/// The variables of a freshly initialised generator of `cfg`.
fn fresh_generator(cfg: &CStyleGanConfig) -> candle_nn::VarMap {
    let vars = candle_nn::VarMap::new();
    let vb = agesynth_nn::init::seeded_var_builder(&vars, 0, DType::F32, &Device::Cpu);
    Generator::new(cfg, vb).unwrap();
    vars
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn parsers_survive_mutated_inputs() {
    // candle's errors capture a backtrace when RUST_BACKTRACE is set (CI sets
    // it), and formatting the error chain resolves it: in the release profile
    // that reads some 80 MB of debug info, counted against a case's bound
    // though no parser asked for it. The bounds measure the parsers.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    let cases = env_or("AGESYNTH_FUZZ_CASES", 3000) as usize;
    let seed = env_or("AGESYNTH_FUZZ_SEED", 1);
    // Cases that hold more than a quarter of their bound, printed.
    let verbose = std::env::var_os("AGESYNTH_FUZZ_VERBOSE").is_some();
    let dir = tempfile::tempdir().unwrap();
    let targets = targets(dir.path());
    let current = dir.path().join("current-case.bin");
    eprintln!("fuzz: the case under way is kept in {}", current.display());
    let total_weight: usize = targets.iter().map(|t| t.weight).sum();
    let mut rng = Rng(seed);
    let mut failures: Vec<String> = Vec::new();
    let mut table: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    // Quiet panics: each is caught and reported below.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for t in &targets {
        // The seeds themselves must pass.
        for (k, s) in t.seeds.iter().enumerate() {
            if t.name.starts_with("generator") || t.name.starts_with("safetensors") {
                assert!((t.run)(s).is_ok(), "{}: seed {k} refused", t.name);
            }
        }
        let n = (cases * t.weight).div_ceil(total_weight);
        let (mut refused, mut peak_max) = (0usize, 0usize);
        for case in 0..n {
            let base = &t.seeds[rng.below(t.seeds.len())];
            let input = mutate(&mut rng, base, &t.seeds, t.text);
            // Kept before the case runs: an abort (a failed allocation)
            // leaves it for replay.
            std::fs::write(&current, &input).unwrap();
            std::fs::write(
                current.with_extension("txt"),
                format!("{} case {case}", t.name),
            )
            .unwrap();
            let (result, peak) = measured(|| catch_unwind(AssertUnwindSafe(|| (t.run)(&input))));
            peak_max = peak_max.max(peak);
            if verbose && peak > t.bound / 4 {
                eprintln!(
                    "{} case {case}: held {peak} bytes for input {:?}",
                    t.name,
                    String::from_utf8_lossy(&input[..input.len().min(2000)])
                );
            }
            let keep = |why: String, failures: &mut Vec<String>| {
                let file = dir.path().join(format!("failure-{}.bin", failures.len()));
                std::fs::write(&file, &input).unwrap();
                failures.push(format!(
                    "{} case {case}: {why} (input kept in {})",
                    t.name,
                    file.display()
                ));
            };
            match result {
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    keep(format!("panicked: {msg}"), &mut failures);
                }
                Ok(Err(e)) => {
                    refused += 1;
                    if let Some(name) = t.names {
                        if !e.contains(name) {
                            keep(format!("error does not name `{name}`: {e}"), &mut failures);
                        }
                    }
                }
                Ok(Ok(())) => {}
            }
            if peak > t.bound {
                keep(
                    format!("held {peak} bytes, over the bound {}", t.bound),
                    &mut failures,
                );
            }
        }
        table.insert(t.name, (n, refused, peak_max));
    }
    std::panic::set_hook(hook);
    eprintln!("fuzz: {cases} cases, seed {seed}");
    eprintln!("| parser | seeds | cases | refused | largest peak |");
    for t in &targets {
        let (n, refused, peak) = table[t.name];
        eprintln!(
            "| {} | {} | {n} | {refused} | {:.1} MiB |",
            t.name,
            t.seeds.len(),
            peak as f64 / (1 << 20) as f64
        );
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
