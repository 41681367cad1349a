//! The shipped MobileNet identity critic (`weights/critic-identity-mobilenet112`):
//! it loads with its sidecar, and on real UTKFace chips (`../shared/data/utkface`
//! or `$AGESYNTH_DATA/utkface`; skipped with a message when absent) a face lies
//! far closer to its own mirror image than to another person.

use std::path::PathBuf;

use agesynth_core::candle_core::{DType, Device, Tensor};
use agesynth_core::{filters::resample, FaceEmbedder, Result};
use agesynth_critic::{load_identity_critic, IdentityCritic, TrunkKind};
use agesynth_face::eval::{verification, Utk};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn critic() -> IdentityCritic {
    let path = repo_root().join("weights/critic-identity-mobilenet112.safetensors");
    load_identity_critic(&path, &Device::Cpu).unwrap().0
}

/// The critic fed 64-px faces, as the generators make them.
struct At64(IdentityCritic);

impl FaceEmbedder for At64 {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        self.0.embed(&resample(images, 0.0, 0.0, 1.0, 64)?)
    }
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn threshold(&self) -> f32 {
        self.0.threshold()
    }
}

#[test]
fn the_shipped_mobilenet_critic_loads_and_embeds() {
    let c = critic();
    assert_eq!(c.config().trunk, TrunkKind::MobileNet { input_size: 112 });
    assert_eq!(c.dim(), 1024);
    // Seeded noise images (candle's own generator cannot be seeded, and the
    // distance checked below depends on the values).
    let x = agesynth_core::random::seeded_uniform(
        41,
        -1.0,
        1.0,
        (2, 3, 64, 64),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    let e = c.embed(&x).unwrap();
    assert_eq!(e.dims(), &[2, 1024]);
    let again = c.embed(&x).unwrap();
    let diff = (&e - &again).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    let v: Vec<f32> = e.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|a| a.is_finite()));
    // Two different images get two different descriptors.
    let d = (e.get(0).unwrap() - e.get(1).unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    assert!(d.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap() > 1e-4);
}

#[test]
#[ignore = "needs real face data (../shared/data or $AGESYNTH_DATA); CI runs it with --ignored where present"]
fn the_shipped_mobilenet_critic_tells_a_mirror_from_another_person() {
    let dir = std::env::var_os("AGESYNTH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"))
        .join("utkface");
    if !dir.is_dir() {
        println!("skipping: UTKFace not found (../shared/data/utkface or $AGESYNTH_DATA/utkface)");
        return;
    }
    let utk = Utk::open(&dir).unwrap();
    let r = verification(&At64(critic()), &utk, 60, 7, &Device::Cpu).unwrap();
    println!("{r}");
    assert_eq!(r.faces, 60);
    assert!(
        r.mirror_mean * 2.0 < r.random_mean,
        "mirror {} random {}",
        r.mirror_mean,
        r.random_mean
    );
}
