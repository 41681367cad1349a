//! Measures how well aligned FG-NET faces are framed like UTKFace chips.
//!
//! Averages ~500 UTKFace chips and the aligned FG-NET faces at 128×128, for
//! several template paddings and two definitions of FG-NET's eye centres
//! (the mean of each eye's contour points, as the template defines them, or
//! the marked pupils),
//! and reports, per setting, the normalised cross-correlation of the two mean
//! faces and the residual scale and shift that would best line them up
//! (1.00 and (0, 0) for a perfect match). Writes the mean faces as PNGs.
//!
//! ```text
//! cargo run --release -p agesynth-data --example framing -- [OUT_DIR]
//! ```
//! The data folder is `$AGESYNTH_DATA` or `../shared/data`.

use std::path::PathBuf;

use agesynth_core::{
    geometry::{warp, FaceTemplate, Similarity},
    FaceDataset, FaceImage,
};
use agesynth_data::{
    align::{alignment, LandmarkScheme},
    testing::shared_data_dir,
    FgNet, UtkFace,
};

const SIZE: u32 = 128;

fn grey(img: &FaceImage) -> Vec<f64> {
    img.pixels()
        .chunks(3)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect()
}

fn to_image(mean: &[f64]) -> FaceImage {
    let px = mean
        .iter()
        .flat_map(|&v| {
            let b = v.round().clamp(0.0, 255.0) as u8;
            [b, b, b]
        })
        .collect();
    FaceImage::new(SIZE, SIZE, px).expect("size matches")
}

/// Normalised cross-correlation over the central region (the border of the
/// chips is background and hair, which differ between the sets).
fn ncc(a: &[f64], b: &[f64]) -> f64 {
    let idx: Vec<usize> = (0..a.len())
        .filter(|i| {
            let (x, y) = ((i % SIZE as usize) as i64, (i / SIZE as usize) as i64);
            let m = SIZE as i64 / 8;
            x >= m && x < SIZE as i64 - m && y >= m && y < SIZE as i64 - m
        })
        .collect();
    let n = idx.len() as f64;
    let (ma, mb) = (
        idx.iter().map(|&i| a[i]).sum::<f64>() / n,
        idx.iter().map(|&i| b[i]).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for &i in &idx {
        let (da, db) = (a[i] - ma, b[i] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    sab / (saa * sbb).sqrt()
}

/// The scale about the centre and shift of `b` that best match `a`.
fn best_fit(a: &[f64], b: &[f64]) -> (f64, f64, f64, f64) {
    let img = to_image(b);
    let c = (SIZE as f64 - 1.0) / 2.0;
    let mut best = (f64::MIN, 1.0, 0.0, 0.0);
    for si in -15..=15 {
        let s = 1.0 + si as f64 * 0.01;
        for dy in -8..=8 {
            for dx in -8..=8 {
                let t = Similarity {
                    a: s,
                    b: 0.0,
                    tx: c - s * c + dx as f64 * 0.5,
                    ty: c - s * c + dy as f64 * 0.5,
                };
                let w = warp(&img, &t, SIZE, SIZE).expect("warp");
                let r = ncc(a, &grey(&w));
                if r > best.0 {
                    best = (r, s, dx as f64 * 0.5, dy as f64 * 0.5);
                }
            }
        }
    }
    best
}

fn mean_of(faces: impl Iterator<Item = FaceImage>) -> Vec<f64> {
    let mut acc = vec![0f64; (SIZE * SIZE) as usize];
    let mut n = 0.0;
    for f in faces {
        for (a, g) in acc.iter_mut().zip(grey(&f)) {
            *a += g;
        }
        n += 1.0;
    }
    acc.iter().map(|v| v / n).collect()
}

fn main() -> agesynth_core::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "framing".into()));
    std::fs::create_dir_all(&out).map_err(|e| agesynth_core::Error::io("creating", &out, e))?;
    let Some(data) = shared_data_dir() else {
        eprintln!("no data folder: set AGESYNTH_DATA");
        return Ok(());
    };
    let utk = UtkFace::open(data.join("utkface"))?;
    let step = utk.len() / 500;
    let utk_mean = mean_of((0..500).map(|k| utk.load(k * step, SIZE).expect("UTKFace chip")));
    agesynth_data::testing::write_png(out.join("utkface_mean.png"), &to_image(&utk_mean))?;
    let fg = FgNet::open(data.join("fgnet-dev"))?;
    // A few aligned faces next to a chip, to look at.
    for i in [0, 40, 80, 120] {
        let face = fg.load(i, 200)?;
        agesynth_data::testing::write_png(out.join(format!("fgnet_aligned_{i}.png")), &face)?;
    }
    agesynth_data::testing::write_png(out.join("utkface_chip.png"), &utk.load(0, 200)?)?;
    println!(
        "UTKFace: mean of 500 chips; FG-NET: mean of {} aligned faces",
        fg.len()
    );
    println!("eyes     padding  ncc     best scale  best shift (px at {SIZE})");
    for &padding in &[0.15, 0.2, 0.25, 0.3, 0.35] {
        for points in ["contour", "pupils"] {
            let tpl = FaceTemplate {
                size: SIZE,
                padding,
            };
            let faces = (0..fg.len()).map(|i| {
                let photo = fg.load_photo(i).expect("FG-NET photo");
                let lm = fg.landmarks(i).expect("landmarks");
                let t = if points == "contour" {
                    alignment(lm, LandmarkScheme::FgNet68, &tpl).expect("alignment")
                } else {
                    let p = LandmarkScheme::FgNet68.five_points(lm);
                    tpl.alignment(&[(0, lm[31]), (1, lm[36]), (3, p[3]), (4, p[4])])
                        .expect("alignment")
                };
                warp(&photo, &t, SIZE, SIZE).expect("warp")
            });
            let m = mean_of(faces);
            agesynth_data::testing::write_png(
                out.join(format!("fgnet_mean_p{padding}_{points}.png")),
                &to_image(&m),
            )?;
            let r = ncc(&utk_mean, &m);
            let (_, s, dx, dy) = best_fit(&utk_mean, &m);
            println!("{points:<7}  {padding:>7.2}  {r:.4}  {s:>10.2}  ({dx:+.1}, {dy:+.1})");
        }
    }
    Ok(())
}
