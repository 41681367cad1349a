//! How real does a cStyleGAN discriminator find a FaceGAN generator's aged
//! faces? Reads UTKFace's test split from a decoded cache, ages inputs of
//! 20–39 to 30–39, 40–49 and 50+, and prints the discriminator's mean logit
//! (as a realism critic: the target group and the person's gender) on the
//! outputs, on the same outputs claimed to be of the other gender, on the
//! inputs copied, and on real faces of the group, with the share of pairs in
//! which a real face scores above an output (0.5: no better than chance at
//! telling them apart; 1: every real face scores above every output).
//!
//! ```sh
//! cargo run --release -p agesynth-train --example realism_probe -- \
//!     <discriminator: weights file with sidecar, checkpoint or run folder> \
//!     <FaceGAN generator> <UTKFace decoded cache (.agscache)>
//! ```
//!
//! A diagnostic, not a judge: the discriminator is a training critic.

use std::path::Path;

use agesynth_core::{AgeBins, AgeGroup, Gender, RealismCritic};
use agesynth_data::{DecodedCache, RealFaces, Split, SplitFractions};
use candle_core::{Device, Tensor};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// At most this many faces per set.
const PER_SET: usize = 192;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [d_path, g_path, cache_path] = &args[..] else {
        return Err(
            "usage: realism_probe <discriminator> <facegan generator> <utkface .agscache>".into(),
        );
    };
    let dev = Device::Cpu;
    let (d, _) = agesynth_cstylegan::load_discriminator(Path::new(d_path), &dev)?;
    let (g, _) = agesynth_facegan::load_generator(Path::new(g_path), &dev)?;
    let cache = DecodedCache::open(cache_path)?;
    let split = Split::new(&cache, SplitFractions::default(), 0)?;
    let bins = AgeBins::default();
    let faces = RealFaces::load(&cache, cache.size(), &bins, Some(&split.test))?;
    let pick = |keep: &dyn Fn(AgeGroup) -> bool| -> Vec<usize> {
        (0..faces.len())
            .filter(|&i| keep(faces.groups()[i]) && faces.genders()[i].is_some())
            .take(PER_SET)
            .collect()
    };
    let logits = |x: &Tensor, t: AgeGroup, s: &[Option<Gender>]| -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for a in (0..s.len()).step_by(16) {
            let b = (a + 16).min(s.len());
            let l = d.realism_logits(&x.narrow(0, a, b - a)?, &vec![t; b - a], &s[a..b])?;
            out.extend(l.to_vec1::<f32>()?);
        }
        Ok(out)
    };
    let row = |name: &str, v: &[f32], real: &[f32]| {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let above: f32 = real
            .iter()
            .flat_map(|a| {
                v.iter()
                    .map(move |b| (a > b) as u8 as f32 + 0.5 * (a == b) as u8 as f32)
            })
            .sum();
        println!(
            "{name:40} n {:4}  mean logit {mean:7.3}  real above it {:.3}",
            v.len(),
            above / (real.len() * v.len()) as f32
        );
    };
    let genders = |idx: &[usize]| -> Vec<Option<Gender>> {
        idx.iter().map(|&i| faces.genders()[i]).collect()
    };
    let other = |s: &[Option<Gender>]| -> Vec<Option<Gender>> {
        s.iter()
            .map(|g| {
                g.map(|g| {
                    if g == Gender::Male {
                        Gender::Female
                    } else {
                        Gender::Male
                    }
                })
            })
            .collect()
    };
    for t in [AgeGroup(3), AgeGroup(4), AgeGroup(5)] {
        println!("--- target {}", bins.label(t));
        let real = pick(&|g| g == t);
        let rx = faces.batch(&real, &vec![false; real.len()], &dev)?.images;
        let real_l = logits(&rx, t, &genders(&real))?;
        row("real faces of the group", &real_l, &real_l);
        let young = pick(&|g| (g.0 == 2 || g.0 == 3) && g.0 < t.0);
        let yx = faces.batch(&young, &vec![false; young.len()], &dev)?.images;
        let ys = genders(&young);
        row(
            "inputs (20-39, younger) copied",
            &logits(&yx, t, &ys)?,
            &real_l,
        );
        let mut outs = Vec::new();
        for a in (0..young.len()).step_by(16) {
            let b = (a + 16).min(young.len());
            let y = g.forward(&yx.narrow(0, a, b - a)?, &vec![t; b - a])?;
            outs.push(y.clamp(-1f32, 1f32)?);
        }
        let outs = Tensor::cat(&outs, 0)?;
        row("outputs", &logits(&outs, t, &ys)?, &real_l);
        row(
            "outputs, claimed the other gender",
            &logits(&outs, t, &other(&ys))?,
            &real_l,
        );
    }
    Ok(())
}
