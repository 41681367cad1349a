//! How well each identity network tells people apart across age, on FG-NET
//! faces aligned at the size FaceGAN works at (64 px, UTKFace framing):
//!
//! ```text
//! cargo run --release -p agesynth-eval --example identity_nets -- FGNET_DIR [SIZE=64] [CRITIC…]
//! ```
//!
//! For dlib's network, HSE FaceRes and each identity critic given
//! (`agesynth train critic --kind identity` weights with their sidecar): mean L2 distance of two photos of
//! one person and of two people, the area under the ROC curve (the chance
//! that a same-person pair lies closer than a different-person pair), the
//! same for pairs twenty or more years apart, and rank-1 identification
//! (a photo's nearest other photo shows the same person).

use std::path::PathBuf;

use agesynth_core::{candle_core::Device, AgeBins, FaceBatch, FaceDataset, FaceEmbedder};
use agesynth_data::FgNet;
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig, FaceRes, FaceResConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: identity_nets FGNET_DIR [SIZE]"));
    let size: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let critic_files: Vec<PathBuf> = args.iter().skip(2).map(PathBuf::from).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dev = Device::Cpu;
    let fg = FgNet::open(&dir)?;
    let n = fg.len();
    let metas: Vec<_> = (0..n).map(|i| fg.meta(i).unwrap().clone()).collect();
    let images = (0..n)
        .map(|i| fg.load(i, size))
        .collect::<agesynth_core::Result<Vec<_>>>()?;
    let ages: Vec<f32> = metas.iter().map(|m| m.age).collect();
    let batch = FaceBatch::from_images(&images, &ages, &AgeBins::default(), &dev)?;
    let dlib = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &root.join("weights/face_recognition.safetensors"),
        &dev,
    )?;
    // FaceRes at its training side and at smaller ones (cheaper).
    let faceres_at = |side: usize| {
        FaceRes::load(
            &FaceResConfig {
                input_size: side,
                ..FaceResConfig::default()
            },
            &root.join("weights/faceres.safetensors"),
            &dev,
        )
    };
    let faceres = [
        faceres_at(224)?,
        faceres_at(160)?,
        faceres_at(112)?,
        faceres_at(64)?,
    ];
    let faceres_names: Vec<String> = faceres
        .iter()
        .map(|f| format!("FaceRes at {} px", f.config().input_size))
        .collect();
    println!("{n} FG-NET photos at {size} px");
    let mut critics = Vec::new();
    for p in &critic_files {
        let (c, _) = agesynth_critic::load_identity_critic(p, &dev)?;
        critics.push((p.display().to_string(), c));
    }
    let mut nets: Vec<(&str, &dyn FaceEmbedder)> = vec![("dlib", &dlib)];
    for (name, f) in faceres_names.iter().zip(&faceres) {
        nets.push((name.as_str(), f));
    }
    for (name, c) in &critics {
        nets.push((name.as_str(), c));
    }
    for (name, net) in nets {
        let t0 = std::time::Instant::now();
        let mut d = Vec::new();
        for start in (0..n).step_by(16) {
            let len = 16.min(n - start);
            d.extend(
                net.embed(&batch.images.narrow(0, start, len)?)?
                    .to_vec2::<f32>()?,
            );
        }
        let ms_per_face = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
        let dist = |i: usize, j: usize| -> f32 {
            d[i].iter()
                .zip(&d[j])
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        let (mut same, mut diff, mut same_far) = (Vec::new(), Vec::new(), Vec::new());
        let mut hits = 0;
        for i in 0..n {
            let mut best = (f32::INFINITY, 0);
            for j in 0..n {
                if i == j {
                    continue;
                }
                let x = dist(i, j);
                if x < best.0 {
                    best = (x, j);
                }
                if j > i {
                    if metas[i].subject == metas[j].subject {
                        same.push(x);
                        if (metas[i].age - metas[j].age).abs() >= 20.0 {
                            same_far.push(x);
                        }
                    } else {
                        diff.push(x);
                    }
                }
            }
            hits += usize::from(metas[best.1].subject == metas[i].subject);
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
        let auc = |s: &[f32]| {
            let mut wins = 0f64;
            for a in s {
                for b in &diff {
                    wins += if a < b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
            wins / (s.len() * diff.len()).max(1) as f64
        };
        println!(
            "{name}: same person {:.3} ({} pairs), different {:.3} ({} pairs), ratio {:.2}; \
             AUC {:.3}, 20+ years apart {:.3} ({} pairs); rank-1 {:.1}%; {:.1} ms a face",
            mean(&same),
            same.len(),
            mean(&diff),
            diff.len(),
            mean(&diff) / mean(&same),
            auc(&same),
            auc(&same_far),
            same_far.len(),
            100.0 * hits as f64 / n as f64,
            ms_per_face
        );
    }
    Ok(())
}
