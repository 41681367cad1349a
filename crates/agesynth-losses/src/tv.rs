//! Total variation: the mean absolute difference between neighbouring
//! pixels, a smoothness prior on generated images.

use agesynth_core::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::loss::{Loss, LossInput};

/// Anisotropic total variation of `(N, C, H, W)` images:
/// `mean |x[.., i+1, j] − x[.., i, j]| + mean |x[.., i, j+1] − x[.., i, j]|`
/// (each mean over its own differences), a scalar.
pub fn total_variation(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        return Err(Error::InvalidInput(format!(
            "total variation needs images of at least 2x2, got {h}x{w}"
        )));
    }
    let dy = (x.narrow(2, 1, h - 1)? - x.narrow(2, 0, h - 1)?)?;
    let dx = (x.narrow(3, 1, w - 1)? - x.narrow(3, 0, w - 1)?)?;
    Ok((dy.abs()?.mean_all()? + dx.abs()?.mean_all()?)?)
}

/// The total-variation term on the generated images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TotalVariationLoss {
    /// Its weight.
    pub weight: f64,
}

impl Loss for TotalVariationLoss {
    fn name(&self) -> &str {
        "tv"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` only.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        total_variation(input.output)
    }
}

/// The colour part of `(N, 3, H, W)` images: each channel less the Rec. 601
/// luma, so that a grey image has none.
pub fn chroma(x: &Tensor) -> Result<Tensor> {
    Ok((x - crate::age::luma(x)?)?)
}

/// `output − reference` of a loss that reads both, the two checked to
/// share a shape; `name` is the loss named in errors.
fn change(input: &LossInput, name: &str) -> Result<Tensor> {
    let reference = input.need_reference(name)?;
    if reference.dims() != input.output.dims() {
        return Err(Error::InvalidInput(format!(
            "{name}: output {:?} and reference {:?} differ in shape",
            input.output.dims(),
            reference.dims()
        )));
    }
    Ok((input.output - reference)?)
}

/// A blur's `sigma` for the loss `name`: a positive, finite number of pixels.
fn check_sigma(name: &str, sigma: f64) -> Result<()> {
    if sigma > 0.0 && sigma.is_finite() {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "{name}: sigma {sigma} must be a positive number of pixels"
    )))
}

/// Total variation of the change of colour from `reference` to `output`:
/// `TV(chroma(output) − chroma(reference))`. A change of tone over a region
/// (greying hair, a warmer skin) costs little; a change of colour from pixel
/// to pixel (stripes, speckle, coloured edges a critic can be fooled with)
/// costs in proportion to its edges. Brightness is free: wrinkles and folds
/// are drawn in luma.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChromaChangeLoss {
    /// Its weight.
    pub weight: f64,
}

impl Loss for ChromaChangeLoss {
    fn name(&self) -> &str {
        "chroma_change"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference` (the images before the change).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        // chroma is linear: the change of colour is the colour of the change.
        total_variation(&chroma(&change(input, "chroma_change")?)?)
    }
}

/// The sharp part of the change from `reference` to `output`:
/// `mean |Δ − blur_σ(Δ)|` with `Δ = output − reference`. A critic that sees
/// images blurred by σ (as the age critic does) rewards only the smooth part
/// of a change; this term makes the rest cost, so that a generator draws a
/// fold as shading rather than as a thin stroke the critic cannot see
/// anyway. Edges the input already has are free (they are not a change).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SharpChangeLoss {
    /// Its weight.
    pub weight: f64,
    /// The blur's standard deviation in pixels: what counts as smooth.
    pub sigma: f64,
}

impl Loss for SharpChangeLoss {
    fn name(&self) -> &str {
        "sharp_change"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference` (the images before the change).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        check_sigma("sharp change", self.sigma)?;
        let change = change(input, "sharp_change")?;
        let smooth = crate::age::gaussian_blur(&change, self.sigma)?;
        Ok((change - smooth)?.abs()?.mean_all()?)
    }
}

/// Dark patches that the input lacks: `mean relu(−blur_σ(luma(Δ)) − τ)` over
/// the pixels, with `Δ = output − reference` and `τ` the threshold (images
/// in `[-1, 1]`). A critic that reads age can be satisfied by a large dark
/// blot (over a mouth, a pair of eyes); [`SharpChangeLoss`] lets it pass,
/// since a blot is smooth, and [`ChromaChangeLoss`] too, since it is grey.
/// This term charges a region whose blurred brightness falls by more than
/// `τ`: a thin fold is blurred below the threshold, a greyer (brighter)
/// head of hair is free, and a mild darkening of the whole face stays
/// under it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DarkPatchLoss {
    /// Its weight.
    pub weight: f64,
    /// The blur's standard deviation in pixels: the size below which a dark
    /// change counts as a line rather than a patch.
    pub sigma: f64,
    /// How far (in `[-1, 1]` units of luma) the blurred brightness may fall
    /// before it costs.
    pub threshold: f64,
}

impl Loss for DarkPatchLoss {
    fn name(&self) -> &str {
        "dark_patch"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference` (the images before the change).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        patch_cost(input, "dark patch", self.sigma, self.threshold, -1.0)
    }
}

/// Pale patches that the input lacks: `mean relu(blur_σ(luma(Δ)) − τ)` over
/// the pixels, with `Δ = output − reference` (images in `[-1, 1]`): the
/// mirror of [`DarkPatchLoss`]. A critic that reads age can also be
/// satisfied by washing a face out (a whiter skin, a paler everything);
/// this term charges a region whose blurred brightness rises by more than
/// `τ`. With a threshold above what greying hair or a lighter beard needs
/// in a face chip, those stay free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PalePatchLoss {
    /// Its weight.
    pub weight: f64,
    /// The blur's standard deviation in pixels: the size below which a
    /// bright change counts as a line rather than a patch.
    pub sigma: f64,
    /// How far (in `[-1, 1]` units of luma) the blurred brightness may rise
    /// before it costs.
    pub threshold: f64,
}

impl Loss for PalePatchLoss {
    fn name(&self) -> &str {
        "pale_patch"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference` (the images before the change).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        patch_cost(input, "pale patch", self.sigma, self.threshold, 1.0)
    }
}

/// Coloured specks the input lacks: `mean relu(‖chroma(Δ)‖² − τ²)` over the
/// pixels, with `Δ = output − reference`, `‖·‖` the length of a pixel's
/// colour change over the three channels and `τ` the threshold (images in
/// `[-1, 1]`). [`ChromaChangeLoss`] charges colour edges on average over
/// the image, so a few pixels of purple or green at a hairline, which a
/// critic may read as age, cost it almost nothing; this term charges each
/// such pixel for itself, and a mild change of tone (below `τ`) not at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColourSpeckLoss {
    /// Its weight.
    pub weight: f64,
    /// How far (in `[-1, 1]` units) a pixel's colour may change before it
    /// costs.
    pub threshold: f64,
}

impl Loss for ColourSpeckLoss {
    fn name(&self) -> &str {
        "colour_speck"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference` (the images before the change).
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let t = self.threshold;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(Error::InvalidInput(format!(
                "colour speck: threshold {t} must be finite and ≥ 0"
            )));
        }
        // Squared lengths: no square root, whose gradient at 0 is infinite.
        let c = chroma(&change(input, "colour_speck")?)?;
        let len2 = c.sqr()?.sum_keepdim(1)?;
        Ok((len2 - t * t)?.relu()?.mean_all()?)
    }
}

/// `mean relu(sign · blur_σ(luma(output − reference)) − τ)`: the cost of
/// the patches [`DarkPatchLoss`] (`sign` −1) and [`PalePatchLoss`] (+1)
/// charge.
fn patch_cost(
    input: &LossInput,
    what: &str,
    sigma: f64,
    threshold: f64,
    sign: f64,
) -> Result<Tensor> {
    check_sigma(what, sigma)?;
    if !(threshold >= 0.0 && threshold.is_finite()) {
        return Err(Error::InvalidInput(format!(
            "{what}: threshold {threshold} must be finite and ≥ 0"
        )));
    }
    let change = change(input, &what.replace(' ', "_"))?;
    // luma repeats the one channel three times: keep one.
    let y = crate::age::luma(&change)?.narrow(1, 0, 1)?;
    let signed = crate::age::gaussian_blur(&y, sigma)?.affine(sign, 0.0)?;
    Ok((signed - threshold)?.relu()?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agesynth_core::random::seeded_normal;
    use candle_core::{DType, Device};

    #[test]
    fn total_variation_value() {
        // x = [[0, 1, 3],
        //      [2, 2, 2]]
        // vertical differences 2, 1, −1: mean |·| = 4/3;
        // horizontal differences 1, 2, 0, 0: mean |·| = 3/4;
        // TV = 4/3 + 3/4 = 2.083333; weighted 0.5: 1.041667.
        let x =
            Tensor::from_vec(vec![0f32, 1., 3., 2., 2., 2.], (1, 1, 2, 3), &Device::Cpu).unwrap();
        let v = total_variation(&x).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - 2.083333).abs() < 1e-5, "{v}");
        let l = TotalVariationLoss { weight: 0.5 };
        let w = l
            .weighted(&LossInput::new(&x))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((w - 1.041667).abs() < 1e-5, "{w}");
        // A constant image has none.
        let c = Tensor::ones((2, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            total_variation(&c).unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
        assert!(total_variation(&x.narrow(2, 0, 1).unwrap()).is_err());
    }

    fn chroma_change(out: &Tensor, reference: &Tensor) -> f32 {
        ChromaChangeLoss { weight: 1.0 }
            .compute(&LossInput::new(out).reference(reference))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn colour_specks_cost_above_the_threshold_only() {
        let dev = Device::Cpu;
        let base = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev).unwrap();
        let cost = |out: &Tensor, t: f64| {
            ColourSpeckLoss {
                weight: 1.0,
                threshold: t,
            }
            .compute(&LossInput::new(out).reference(&base))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
        };
        // A grey change (any brightness) has no colour: free.
        let grey = (base.ones_like().unwrap() * 0.7).unwrap();
        assert!(cost(&grey, 0.0) < 1e-7);
        // One pixel of pure red change 0.6: chroma (0.6 − 0.1794, −0.1794,
        // −0.1794) by Rec. 601 luma (0.299 · 0.6), length² = 0.4206² + 2 ·
        // 0.1794² = 0.24127; over 16 pixels, less τ².
        let mut v = vec![0f32; 48];
        v[0] = 0.6;
        let speck = Tensor::from_vec(v, (1, 3, 4, 4), &dev).unwrap();
        let len2 = 0.4206f32.powi(2) + 2.0 * 0.1794f32.powi(2);
        assert!((cost(&speck, 0.0) - len2 / 16.0).abs() < 1e-5);
        assert!((cost(&speck, 0.2) - (len2 - 0.04) / 16.0).abs() < 1e-5);
        // Below the threshold: free.
        assert_eq!(cost(&speck, 0.5), 0.0);
        // A colour change spread thinly over the image stays free at a
        // threshold the speck exceeds.
        let tint = Tensor::from_vec(
            [vec![0.1f32; 16], vec![0f32; 32]].concat(),
            (1, 3, 4, 4),
            &dev,
        )
        .unwrap();
        assert_eq!(cost(&tint, 0.2), 0.0);
        assert!(ColourSpeckLoss {
            weight: 1.0,
            threshold: -1.0
        }
        .compute(&LossInput::new(&speck).reference(&base))
        .is_err());
    }

    #[test]
    fn chroma_change_charges_colour_edges_only() {
        let dev = Device::Cpu;
        let base = seeded_normal(21, 0.3, (2, 3, 8, 8), DType::F32, &Device::Cpu).unwrap();
        // A brightness change with edges (a grey stripe) is free.
        let stripe: Vec<f32> = (0..64)
            .map(|i| if (i / 8 + i % 8) % 4 == 0 { 0.5 } else { 0.0 })
            .collect();
        let stripe = Tensor::from_vec(stripe, (1, 1, 8, 8), &dev).unwrap();
        let grey = base.broadcast_add(&stripe).unwrap();
        assert!(chroma_change(&grey, &base) < 1e-6);
        // So is one colour change over the whole image (a warmer tone).
        let tint = Tensor::from_vec(vec![0.2f32, 0.0, -0.1], (1, 3, 1, 1), &dev).unwrap();
        let warm = base.broadcast_add(&tint).unwrap();
        assert!(chroma_change(&warm, &base) < 1e-6);
        // The same stripe in one channel is a coloured stripe: it costs.
        let zeros = Tensor::zeros((1, 1, 8, 8), candle_core::DType::F32, &dev).unwrap();
        let red = Tensor::cat(&[&stripe, &zeros, &zeros], 1).unwrap();
        let coloured = base.broadcast_add(&red).unwrap();
        let v = chroma_change(&coloured, &base);
        // Analytically: the red stripe's chroma is (1 − 0.299, −0.299, −0.299)
        // × 0.5 on stripe pixels; TV sums |·| over the three channels' edges.
        let expect = {
            let s = stripe.squeeze(0).unwrap().squeeze(0).unwrap();
            let tv = total_variation(&s.unsqueeze(0).unwrap().unsqueeze(0).unwrap())
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            tv * (0.701 + 0.299 + 0.299) / 3.0
        };
        assert!((v - expect).abs() < 1e-4, "{v} vs {expect}");
        // Without a reference it is an error, not a panic.
        assert!(ChromaChangeLoss { weight: 1.0 }
            .compute(&LossInput::new(&base))
            .is_err());
    }

    /// Checks `loss`'s gradient in its output at a few elements against
    /// central finite differences, at a random point of shape `shape`.
    fn gradient_matches_finite_differences(loss: &dyn Loss, shape: (usize, usize, usize, usize)) {
        let dev = Device::Cpu;
        let x = candle_core::Var::from_tensor(
            &seeded_normal(22, 0.5, shape, DType::F64, &Device::Cpu).unwrap(),
        )
        .unwrap();
        let r = seeded_normal(23, 0.5, shape, DType::F64, &Device::Cpu).unwrap();
        let f = |t: &Tensor| loss.compute(&LossInput::new(t).reference(&r)).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let g = flat(
            f(x.as_tensor())
                .backward()
                .unwrap()
                .get(x.as_tensor())
                .unwrap(),
        );
        let x0 = flat(x.as_tensor());
        let at = |v: Vec<f64>| {
            f(&Tensor::from_vec(v, shape, &dev).unwrap())
                .to_scalar::<f64>()
                .unwrap()
        };
        let eps = 1e-6;
        for i in [0, x0.len() / 7, x0.len() / 3, x0.len() / 2, x0.len() - 1] {
            let (mut p, mut m) = (x0.clone(), x0.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (at(p) - at(m)) / (2.0 * eps);
            assert!((fd - g[i]).abs() < 1e-6, "element {i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn chroma_change_gradient_matches_finite_differences() {
        gradient_matches_finite_differences(&ChromaChangeLoss { weight: 1.0 }, (1, 3, 4, 4));
    }

    fn sharp_change(out: &Tensor, reference: &Tensor) -> f32 {
        SharpChangeLoss {
            weight: 1.0,
            sigma: 2.0,
        }
        .compute(&LossInput::new(out).reference(reference))
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
    }

    #[test]
    fn sharp_change_charges_strokes_not_shading() {
        let dev = Device::Cpu;
        let base = seeded_normal(24, 0.3, (1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
        // A uniform change (a darker face) is smooth: free.
        let darker = (&base - 0.2).unwrap();
        assert!(sharp_change(&darker, &base) < 1e-6);
        // A broad, soft fold (a Gaussian bump of σ = 4 px) costs little; a
        // one-pixel stroke of the same height costs far more.
        let bump: Vec<f32> = (0..256)
            .map(|i| {
                let (y, x) = ((i / 16) as f32 - 8.0, (i % 16) as f32 - 8.0);
                -0.4 * (-(x * x + y * y) / (2.0 * 16.0)).exp()
            })
            .collect();
        let bump = Tensor::from_vec(bump, (1, 1, 16, 16), &dev).unwrap();
        let stroke: Vec<f32> = (0..256)
            .map(|i| if i % 16 == i / 16 { -0.4 } else { 0.0 })
            .collect();
        let stroke = Tensor::from_vec(stroke, (1, 1, 16, 16), &dev).unwrap();
        let soft = sharp_change(&base.broadcast_add(&bump).unwrap(), &base);
        let sharp = sharp_change(&base.broadcast_add(&stroke).unwrap(), &base);
        assert!(sharp > 1.5 * soft, "stroke {sharp} vs fold {soft}");
        // Edges the input already has are not a change.
        assert!(sharp_change(&base, &base) < 1e-7);
        // A bad sigma is an error.
        assert!(SharpChangeLoss {
            weight: 1.0,
            sigma: 0.0
        }
        .compute(&LossInput::new(&base).reference(&base))
        .is_err());
    }

    #[test]
    fn sharp_change_gradient_matches_finite_differences() {
        gradient_matches_finite_differences(
            &SharpChangeLoss {
                weight: 1.0,
                sigma: 1.0,
            },
            (1, 3, 6, 6),
        );
    }

    fn dark_patch(out: &Tensor, reference: &Tensor) -> f32 {
        DarkPatchLoss {
            weight: 1.0,
            sigma: 1.5,
            threshold: 0.2,
        }
        .compute(&LossInput::new(out).reference(reference))
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
    }

    #[test]
    fn dark_patch_charges_blots_not_lines_or_greying() {
        let dev = Device::Cpu;
        let base = seeded_normal(25, 0.3, (1, 3, 16, 16), DType::F32, &Device::Cpu).unwrap();
        let plane = |f: &dyn Fn(usize, usize) -> f32| {
            let v: Vec<f32> = (0..256).map(|i| f(i / 16, i % 16)).collect();
            Tensor::from_vec(v, (1, 1, 16, 16), &dev).unwrap()
        };
        // A dark blot of 6×4 pixels, 0.8 darker: it costs.
        let blot = plane(&|y, x| {
            if (6..10).contains(&y) && (5..11).contains(&x) {
                -0.8
            } else {
                0.0
            }
        });
        let blotted = dark_patch(&base.broadcast_add(&blot).unwrap(), &base);
        assert!(blotted > 1e-3, "blot {blotted}");
        // A one-pixel line as dark blurs below the threshold: (nearly) free.
        let line = plane(&|y, x| {
            if y == 8 && (2..14).contains(&x) {
                -0.8
            } else {
                0.0
            }
        });
        let lined = dark_patch(&base.broadcast_add(&line).unwrap(), &base);
        assert!(lined < 0.1 * blotted, "line {lined} vs blot {blotted}");
        // Brightening (greying hair) is free, and so is a mild darkening
        // of the whole face under the threshold.
        let grey = (&base + 0.6).unwrap();
        assert!(dark_patch(&grey, &base) < 1e-7);
        let dimmer = (&base - 0.15).unwrap();
        assert!(dark_patch(&dimmer, &base) < 1e-7);
        // The value: a uniform darkening of 0.5 costs 0.5 − 0.2.
        let dark = (&base - 0.5).unwrap();
        assert!((dark_patch(&dark, &base) - 0.3).abs() < 1e-4);
        // Bad settings and a missing reference are errors.
        for (sigma, threshold) in [(0.0, 0.2), (1.0, -0.1), (1.0, f64::NAN)] {
            let l = DarkPatchLoss {
                weight: 1.0,
                sigma,
                threshold,
            };
            assert!(l.compute(&LossInput::new(&base).reference(&base)).is_err());
        }
        let l = DarkPatchLoss {
            weight: 1.0,
            sigma: 1.0,
            threshold: 0.2,
        };
        assert!(l.compute(&LossInput::new(&base)).is_err());
    }

    #[test]
    fn pale_patch_mirrors_dark_patch() {
        let base = seeded_normal(26, 0.3, (2, 3, 12, 12), DType::F32, &Device::Cpu).unwrap();
        let pale = |out: &Tensor| {
            PalePatchLoss {
                weight: 1.0,
                sigma: 1.5,
                threshold: 0.3,
            }
            .compute(&LossInput::new(out).reference(&base))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
        };
        // A uniform brightening of 0.5 costs 0.5 − 0.3; darkening is free,
        // and so is a brightening under the threshold.
        assert!((pale(&(&base + 0.5).unwrap()) - 0.2).abs() < 1e-4);
        assert!(pale(&(&base - 0.8).unwrap()) < 1e-7);
        assert!(pale(&(&base + 0.25).unwrap()) < 1e-7);
        // Whatever the dark-patch term charges for a change, this term
        // charges for the opposite change (same blur and threshold).
        let change = (seeded_normal(27, 0.6, (2, 3, 12, 12), DType::F32, &Device::Cpu).unwrap()
            + 0.35)
            .unwrap();
        let brighter = (&base + &change).unwrap();
        let darker = (&base - &change).unwrap();
        let d = DarkPatchLoss {
            weight: 1.0,
            sigma: 1.5,
            threshold: 0.3,
        }
        .compute(&LossInput::new(&darker).reference(&base))
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
        let p = pale(&brighter);
        assert!(p > 1e-3 && (p - d).abs() < 1e-5, "pale {p} dark {d}");
        // Bad settings and a missing reference are errors that name it.
        let bad = PalePatchLoss {
            weight: 1.0,
            sigma: 1.0,
            threshold: -0.1,
        };
        let err = bad
            .compute(&LossInput::new(&base).reference(&base))
            .unwrap_err();
        assert!(err.to_string().contains("pale patch"), "{err}");
        let ok = PalePatchLoss {
            weight: 1.0,
            sigma: 1.0,
            threshold: 0.1,
        };
        assert!(ok.compute(&LossInput::new(&base)).is_err());
    }

    #[test]
    fn pale_patch_gradient_matches_finite_differences() {
        gradient_matches_finite_differences(
            &PalePatchLoss {
                weight: 1.0,
                sigma: 1.0,
                threshold: 0.1,
            },
            (1, 3, 6, 6),
        );
    }

    #[test]
    fn dark_patch_gradient_matches_finite_differences() {
        gradient_matches_finite_differences(
            &DarkPatchLoss {
                weight: 1.0,
                sigma: 1.0,
                threshold: 0.1,
            },
            (1, 3, 6, 6),
        );
    }
}
