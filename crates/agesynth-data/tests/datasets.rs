//! Datasets, splits, the cache and the in-memory training path over folders
//! generated on the fly.

use image::ImageEncoder;
use std::path::Path;

use agesynth_core::{
    geometry::{FaceTemplate, Similarity},
    AgeBins, FaceDataset, Gender,
};
use agesynth_data::{
    testing::{synthetic_face, write_grey_jpeg, write_jpeg, write_png},
    CsvFolder, DataOrder, DatasetKind, DatasetStats, DecodedCache, FgNet, RealFaces, Split,
    SplitFractions, UtkFace,
};
use candle_core::Device;

fn utk_folder(dir: &Path) {
    let names = [
        "1_0_0_20170109150557335.jpg.chip.jpg",
        "5_1_2_20170109150557336.jpg.chip.jpg",
        "25_0_1_20170109150557337.jpg.chip.jpg",
        "26_1_3_20170109150557338.jpg.chip.jpg",
        "34_0_4_20170109150557339.jpg.chip.jpg",
        "39_1_20170116174525125.jpg.chip.jpg",
        "55_0_0_20170116232725357jpg.chip.jpg",
        "24_0_1_20170116220224657 .jpg.chip.jpg",
        "71_1_0_20170109150557340.jpg.chip.jpg",
    ];
    for (i, n) in names.iter().enumerate() {
        write_jpeg(dir.join(n), &synthetic_face(200, 200, i as u64)).unwrap();
    }
    std::fs::write(dir.join("README.txt"), "not a face").unwrap();
    write_jpeg(dir.join("unknown_face.jpg"), &synthetic_face(20, 20, 0)).unwrap();
}

#[test]
fn utkface_folder_accounts_for_every_file() {
    let dir = tempfile::tempdir().unwrap();
    utk_folder(dir.path());
    let ds = UtkFace::open(dir.path()).unwrap();
    assert_eq!(ds.len(), 9);
    assert_eq!(ds.skipped().len(), 2);
    assert_eq!(ds.len() + ds.skipped().len(), 11);
    assert!(ds
        .skipped()
        .iter()
        .any(|s| s.reason.contains("not an image")));
    assert!(ds.skipped().iter().any(|s| s.reason.contains("no age")));
    assert_eq!(ds.quirks().len(), 3);
    let m = ds.meta(0).unwrap();
    assert_eq!(
        (m.age, m.gender, m.race),
        (1.0, Some(Gender::Male), Some(0))
    );
    for size in [64, 128, 200] {
        let img = ds.load(3, size).unwrap();
        assert_eq!((img.width(), img.height()), (size, size));
    }
    assert!(ds.load(99, 64).is_err());
    assert_eq!(
        DatasetKind::detect(dir.path()).unwrap(),
        DatasetKind::UtkFace
    );
    let stats = DatasetStats::scan(dir.path(), None, &Default::default()).unwrap();
    let counts: Vec<usize> = stats.age_groups.iter().map(|g| g.count).collect();
    assert_eq!(counts, vec![2, 0, 3, 2, 0, 2]);
    assert_eq!((stats.genders.male, stats.genders.female), (5, 4));
    assert_eq!(stats.quirks.values().sum::<usize>(), 3);
}

#[test]
fn a_corrupt_face_fails_loudly_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("30_0_0_20170109150557335.jpg.chip.jpg"),
        b"\xFF\xD8garbage",
    )
    .unwrap();
    let ds = UtkFace::open(dir.path()).unwrap();
    let e = ds.load(0, 64).unwrap_err().to_string();
    assert!(e.contains("30_0_0_20170109150557335.jpg.chip.jpg"), "{e}");
}

/// 68 landmarks in FG-NET's markup for a face framed exactly like the
/// template: eye contours around the template's eye centres, the nose tip
/// and mouth corners on the template's, the rest (unused) on the chin.
fn fgnet_landmarks(tpl: &FaceTemplate) -> [[f64; 2]; 68] {
    let five = tpl.five_points();
    let mut l = [[tpl.size as f64 / 2.0, tpl.size as f64 * 0.95]; 68];
    for (k, d) in [[-6.0, 0.0], [0.0, -3.0], [6.0, 0.0], [0.0, 3.0]]
        .iter()
        .enumerate()
    {
        l[27 + k] = [five[0][0] + d[0], five[0][1] + d[1]];
        l[32 + k] = [five[1][0] + d[0], five[1][1] + d[1]];
    }
    l[31] = five[0];
    l[36] = five[1];
    l[67] = five[2];
    l[48] = five[3];
    l[54] = five[4];
    l
}

/// Writes an FG-NET-like folder: per subject a few photos of a face placed
/// by a known similarity, with 68 landmarks consistent with it.
fn fgnet_folder(dir: &Path, subjects: u32, per_subject: u32) {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("points")).unwrap();
    let tpl = FaceTemplate::utkface(200);
    for s in 1..=subjects {
        for k in 0..per_subject {
            let age = 2 + 7 * k + s;
            let name = format!("{s:03}{}{age:02}", if k % 2 == 0 { 'A' } else { 'a' });
            let (w, h) = (300 + 20 * k, 360 + 10 * s);
            // The chip's content, placed into the photo by chip_to_photo.
            let chip = synthetic_face(200, 200, (s * 10 + k) as u64);
            let chip_to_photo = Similarity {
                a: 1.3 * 0.1f64.cos(),
                b: 1.3 * 0.1f64.sin(),
                tx: 20.0 + k as f64,
                ty: 30.0,
            };
            let photo = agesynth_core::geometry::warp(&chip, &chip_to_photo, w, h).unwrap();
            let ext = if k % 3 == 2 { "jpg" } else { "JPG" };
            if (s + k) % 4 == 0 {
                // Greyscale scan.
                let grey: Vec<u8> = photo.pixels().chunks(3).map(|p| p[1]).collect();
                write_grey_jpeg(dir.join(format!("images/{name}.{ext}")), w, h, &grey).unwrap();
            } else {
                write_jpeg(dir.join(format!("images/{name}.{ext}")), &photo).unwrap();
            }
            let mut pts = "version: 1\nn_points: 68\n{\n".to_string();
            for p in fgnet_landmarks(&tpl) {
                let q = chip_to_photo.apply(p);
                pts += &format!("{:.3} {:.3}\n", q[0], q[1]);
            }
            pts += "}\n";
            std::fs::write(dir.join(format!("points/{}.pts", name.to_lowercase())), pts).unwrap();
        }
    }
}

#[test]
fn fgnet_folder_aligns_faces_like_chips() {
    let dir = tempfile::tempdir().unwrap();
    fgnet_folder(dir.path(), 4, 3);
    // An image without landmarks and a malformed name.
    write_jpeg(
        dir.path().join("images/009A10.JPG"),
        &synthetic_face(50, 60, 1),
    )
    .unwrap();
    write_jpeg(
        dir.path().join("images/photo.JPG"),
        &synthetic_face(50, 60, 1),
    )
    .unwrap();
    let ds = FgNet::open(dir.path()).unwrap();
    assert_eq!(ds.len(), 12);
    assert_eq!(ds.subjects(), vec![1, 2, 3, 4]);
    let reasons: Vec<&str> = ds.skipped().iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(ds.skipped().len(), 2, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("no landmarks file points/009a10.pts")));
    assert_eq!(DatasetKind::detect(dir.path()).unwrap(), DatasetKind::FgNet);
    // Aligned at 200 the face is the chip it was made from, up to JPEG and
    // resampling error; at 64 it is the chip shrunk.
    for i in 0..ds.len() {
        let m = ds.meta(i).unwrap();
        let s = m.subject.unwrap();
        let name = m.path.file_stem().unwrap().to_str().unwrap().to_string();
        let k = (0..3)
            .find(|k| name.ends_with(&format!("{:02}", 2 + 7 * k + s)))
            .unwrap();
        let chip = synthetic_face(200, 200, (s * 10 + k) as u64);
        let got = ds.load(i, 200).unwrap();
        let grey = got.pixels().chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]);
        // Compare the central region (the chip's edges were outside the photo).
        let mut err = 0f64;
        let mut n = 0f64;
        for y in 40..160 {
            for x in 40..160 {
                let o = (y * 200 + x) * 3;
                for c in 0..3 {
                    let want = if grey {
                        chip.pixels()[o + 1]
                    } else {
                        chip.pixels()[o + c]
                    };
                    err += (got.pixels()[o + c] as f64 - want as f64).abs();
                    n += 1.0;
                }
            }
        }
        assert!(err / n < 8.0, "{name}: mean error {:.2}", err / n);
        let small = ds.load(i, 64).unwrap();
        assert_eq!((small.width(), small.height()), (64, 64));
    }
}

#[test]
fn fgnet_splits_by_subject() {
    let dir = tempfile::tempdir().unwrap();
    fgnet_folder(dir.path(), 10, 2);
    let ds = FgNet::open(dir.path()).unwrap();
    let split = Split::new(&ds, SplitFractions::default(), 5).unwrap();
    assert_eq!(
        split,
        Split::new(&ds, SplitFractions::default(), 5).unwrap()
    );
    assert_eq!(split.len(), 20);
    let subjects = |idx: &[usize]| {
        let mut s: Vec<u32> = idx
            .iter()
            .map(|&i| ds.meta(i).unwrap().subject.unwrap())
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let (tr, va, te) = (
        subjects(&split.train),
        subjects(&split.val),
        subjects(&split.test),
    );
    assert_eq!((tr.len(), va.len(), te.len()), (8, 1, 1));
    assert!(va.iter().chain(&te).all(|s| !tr.contains(s)) && va != te);
}

#[test]
fn csv_folder_reads_labels_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_jpeg(d.join("a.jpg"), &synthetic_face(120, 150, 1)).unwrap();
    write_png(d.join("b c.png"), &synthetic_face(90, 90, 2)).unwrap();
    write_jpeg(d.join("d.jpg"), &synthetic_face(90, 90, 3)).unwrap();
    std::fs::write(
        d.join("faces.csv"),
        "file,age,gender\na.jpg,31,f\n\"b c.png\", 7 ,male\nmissing.jpg,40,m\nd.jpg,old,f\n,5,m\nd.jpg,61.5,\n",
    )
    .unwrap();
    assert_eq!(DatasetKind::detect(d).unwrap(), DatasetKind::Csv);
    let ds = CsvFolder::open(d).unwrap();
    assert_eq!(ds.len(), 3);
    let ages: Vec<f32> = ds.metas().iter().map(|m| m.age).collect();
    assert_eq!(ages, vec![31.0, 7.0, 61.5]);
    assert_eq!(ds.meta(0).unwrap().gender, Some(Gender::Female));
    assert_eq!(ds.meta(2).unwrap().gender, None);
    let reasons: Vec<&str> = ds.skipped().iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("line 4") && reasons[0].contains("not found"));
    assert!(reasons[1].contains("line 5") && reasons[1].contains("no valid age"));
    assert!(reasons[2].contains("line 6") && reasons[2].contains("no file"));
    let img = ds.load(0, 32).unwrap();
    assert_eq!((img.width(), img.height()), (32, 32));
    // Headerless.
    std::fs::write(d.join("faces.csv"), "a.jpg,31\nd.jpg,2\n").unwrap();
    let ds = CsvFolder::open(d.join("faces.csv")).unwrap();
    assert_eq!(ds.len(), 2);
}

#[test]
fn cache_round_trips_and_detects_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let faces = dir.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    utk_folder(&faces);
    let ds = UtkFace::open(&faces).unwrap();
    let path = dir.path().join("cache/utk-32.bin");
    let (cache, built) = DecodedCache::open_or_build(&ds, 32, &path, "utkface", 2).unwrap();
    assert!(built);
    assert_eq!(cache.len(), ds.len());
    for i in 0..ds.len() {
        assert_eq!(cache.load(i, 32).unwrap(), ds.load(i, 32).unwrap());
        assert_eq!(cache.meta(i), ds.meta(i));
    }
    assert_eq!(cache.load(0, 16).unwrap().width(), 16);
    assert!(cache.load(ds.len(), 32).is_err());
    drop(cache);
    // Opened again without rebuilding.
    let (_, built) = DecodedCache::open_or_build(&ds, 32, &path, "utkface", 2).unwrap();
    assert!(!built);
    // Another size or tag is stale.
    assert!(
        DecodedCache::open_or_build(&ds, 32, &path, "other framing", 2)
            .unwrap()
            .1
    );
    // A changed source file is stale.
    let victim = ds.meta(2).unwrap().path.clone();
    write_jpeg(&victim, &synthetic_face(210, 210, 77)).unwrap();
    let ds = UtkFace::open(&faces).unwrap();
    let (cache, built) = DecodedCache::open_or_build(&ds, 32, &path, "other framing", 2).unwrap();
    assert!(built);
    assert_eq!(cache.load(2, 32).unwrap(), ds.load(2, 32).unwrap());
    // The cache is a dataset for the trainers' data path, and the faces it
    // gives are the decoded ones; batches repeat after a save and restore of
    // the order (a resumed run sees the same batches).
    let bins = AgeBins::default();
    let mem = RealFaces::load(&cache, 32, &bins, None).unwrap();
    assert_eq!(mem.len() + mem.skipped().len(), ds.len());
    let mut order = DataOrder::new(mem.len(), 5);
    let first = mem
        .next_batch(&mut order, 2, true, 1, &Device::Cpu)
        .unwrap();
    let saved = serde_json::to_string(&order).unwrap();
    let a = mem
        .next_batch(&mut order, 3, true, 2, &Device::Cpu)
        .unwrap();
    let mut resumed: DataOrder = serde_json::from_str(&saved).unwrap();
    let b = mem
        .next_batch(&mut resumed, 3, true, 2, &Device::Cpu)
        .unwrap();
    let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat(&a.images), flat(&b.images));
    assert_eq!(a.ages, b.ages);
    assert_eq!(first.len(), 2);
    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn bad_caches_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let faces = dir.path().join("faces");
    std::fs::create_dir(&faces).unwrap();
    utk_folder(&faces);
    let ds = UtkFace::open(&faces).unwrap();
    let path = dir.path().join("c.bin");
    DecodedCache::build(&ds, 16, &path, "t", 1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let e = DecodedCache::open(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.bin") && e.contains("truncated"), "{e}");
    std::fs::write(&cut, b"short").unwrap();
    assert!(DecodedCache::open(&cut).is_err());
    let mut other = bytes.clone();
    other[0] = b'X';
    std::fs::write(&cut, &other).unwrap();
    assert!(DecodedCache::open(&cut)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    // Issue 17, item 7: a build that meets corrupt faces (random bytes, a
    // truncated JPEG, a 1x1 PNG) goes on, records every one of them with a
    // reason naming its file, and loading one is an error naming it.
    let victims: Vec<_> = (0..3).map(|i| ds.meta(i).unwrap().path.clone()).collect();
    std::fs::write(&victims[0], b"\xFF\xD8 broken").unwrap();
    let whole = std::fs::read(&victims[1]).unwrap();
    std::fs::write(&victims[1], &whole[..whole.len() * 2 / 5]).unwrap();
    let mut one = Vec::new();
    image::codecs::png::PngEncoder::new(&mut one)
        .write_image(&[9u8; 3], 1, 1, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(&victims[2], &one).unwrap();
    let ds = UtkFace::open(&faces).unwrap();
    let cache = DecodedCache::build(&ds, 16, &path, "t", 1).unwrap();
    let bad: Vec<(usize, String)> = cache.bad_faces().map(|(i, r)| (i, r.to_string())).collect();
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "{bad:?}"
    );
    for ((_, reason), victim) in bad.iter().zip(&victims) {
        assert!(reason.contains(&*victim.to_string_lossy()), "{reason}");
    }
    assert!(bad[1].1.contains("truncated"), "{}", bad[1].1);
    assert!(bad[2].1.contains("1x1"), "{}", bad[2].1);
    let e = cache.load(1, 16).unwrap_err().to_string();
    assert!(e.contains(&*victims[1].to_string_lossy()), "{e}");
    assert_eq!(cache.len(), ds.len());
    assert!(cache.load(ds.len() - 1, 16).is_ok());
    // A build stopped by its cancel check leaves the previous cache and no
    // temporary file.
    let before = std::fs::read(&path).unwrap();
    let e = DecodedCache::build_cancellable(&ds, 16, &path, "other", 1, &|| true).unwrap_err();
    assert!(matches!(e, agesynth_data::Error::Interrupted(_)), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}
