//! Does a cStyleGAN latent stay one person across the age groups, read by
//! several identity networks? The same latents as `agesynth eval cstylegan`
//! (seed 0; ψ 0.7 unless PSI says otherwise) are rendered at every group; each network's descriptors
//! then give the share of latents whose render at a group finds its own
//! 20–29 render nearest among all latents' (`agesynth_eval::cstylegan::consistency`):
//!
//! ```text
//! cargo run --release -p agesynth-eval --example cstylegan_identity -- MODEL [COUNT=200] [PSI=0.7] [CRITIC…]
//! ```
//!
//! dlib is the evaluation's judge; HSE FaceRes (at 160 px) is a network no
//! evaluation reads; each CRITIC is an identity critic a generator trains
//! against. Where dlib finds few and FaceRes many, the renders change what
//! dlib reads more than the person; where every network finds few, the
//! person changes.

use std::path::PathBuf;

use agesynth_core::{batch::tensor_to_images, candle_core::Device, FaceEmbedder};
use agesynth_cstylegan::{load_generator, seeded_latents, GenerateOptions, Noise};
use agesynth_face::{DlibFaceEmbedder, EmbedderConfig, FaceRes, FaceResConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = PathBuf::from(args.first().ok_or_else(|| {
        anyhow::anyhow!("usage: cstylegan_identity MODEL [COUNT] [PSI] [CRITIC…]")
    })?);
    let count: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let psi: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0.7);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dev = Device::Cpu;
    let (generator, _) = load_generator(&model, &dev)?;
    let bins = generator.config().bins()?;
    let dlib = DlibFaceEmbedder::load(
        &EmbedderConfig::default(),
        &root.join("weights/face_recognition.safetensors"),
        &dev,
    )?;
    let faceres = FaceRes::load(
        &FaceResConfig {
            input_size: 160,
            ..FaceResConfig::default()
        },
        &root.join("weights/faceres.safetensors"),
        &dev,
    )?;
    let mut critics = Vec::new();
    for p in args.iter().skip(3) {
        critics.push((
            p.clone(),
            agesynth_critic::load_identity_critic(p.as_ref(), &dev)?.0,
        ));
    }
    let mut nets: Vec<(String, &dyn FaceEmbedder)> = vec![
        ("dlib (judge)".into(), &dlib),
        ("FaceRes at 160 px".into(), &faceres),
    ];
    for (name, c) in &critics {
        nets.push((name.clone(), c));
    }
    let z = seeded_latents(count, generator.config().z_dim, 0, &dev)?;
    // emb[net][group][latent]
    let mut emb = vec![vec![Vec::new(); bins.len()]; nets.len()];
    for t in bins.groups() {
        for (b, start) in (0..count).step_by(16).enumerate() {
            let len = 16.min(count - start);
            let opts = GenerateOptions {
                truncation: psi,
                mixing: None,
                noise: Noise::Seeded(b as u64),
                age_free_layers: 0,
            };
            let out = generator
                .forward(&z.narrow(0, start, len)?, &vec![t; len], &opts)?
                .clamp(-1f32, 1f32)?;
            // Through 8-bit images, as the evaluation measures them.
            let images = tensor_to_images(&out)?;
            let x = agesynth_core::FaceBatch::from_images(&images, &vec![30.0; len], &bins, &dev)?
                .images;
            for (k, (_, net)) in nets.iter().enumerate() {
                emb[k][t.0].extend(net.embed(&x)?.to_vec2::<f32>()?);
            }
        }
    }
    println!("{count} latents at ψ {psi}, identification of each group's render against the 20–29 renders:");
    for (k, (name, _)) in nets.iter().enumerate() {
        let c = agesynth_eval::cstylegan::consistency(&bins, &emb[k], None)
            .ok_or_else(|| anyhow::anyhow!("too few latents"))?;
        let cells: Vec<String> = c
            .identification
            .iter()
            .map(|(g, r)| format!("{g} {:.1}%", 100.0 * r))
            .collect();
        println!("{name}: {}", cells.join(", "));
    }
    Ok(())
}
