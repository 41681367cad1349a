//! Reconstruction losses between generated and reference images: L1, L2
//! (mean squared error) and SSIM (`1 − mean SSIM`).

use agesynth_core::{Error, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::loss::{same_shape, Loss, LossInput};

/// Which reconstruction distance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reconstruction {
    /// Mean absolute difference.
    #[default]
    L1,
    /// Mean squared difference.
    L2,
    /// `1 − mean SSIM` with a Gaussian window of `window` pixels (odd) and
    /// standard deviation `sigma`, on images mapped from `[-1, 1]` to
    /// `[0, 1]` (constants `C1 = 0.01²`, `C2 = 0.03²`), without padding.
    Ssim {
        /// Window side (odd; 11 in the SSIM paper, smaller for tiny images).
        window: usize,
        /// Standard deviation of the Gaussian window (1.5 in the paper).
        sigma: f64,
    },
}

impl Reconstruction {
    /// The unweighted distance between `a` and `b` (same shape), a scalar.
    pub fn distance(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_shape(self.name(), a, b)?;
        match *self {
            Reconstruction::L1 => Ok((a - b)?.abs()?.mean_all()?),
            Reconstruction::L2 => Ok((a - b)?.sqr()?.mean_all()?),
            Reconstruction::Ssim { window, sigma } => {
                Ok((ssim(a, b, window, sigma)?.neg()? + 1.0)?)
            }
        }
    }

    /// The short name (`l1`, `l2`, `ssim`).
    pub fn name(&self) -> &'static str {
        match self {
            Reconstruction::L1 => "l1",
            Reconstruction::L2 => "l2",
            Reconstruction::Ssim { .. } => "ssim",
        }
    }

    /// SSIM with the usual window (11 pixels, σ 1.5).
    pub fn ssim() -> Self {
        Reconstruction::Ssim {
            window: 11,
            sigma: 1.5,
        }
    }
}

/// A reconstruction term: `weight · distance(output, reference)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionLoss {
    /// The distance.
    pub kind: Reconstruction,
    /// Its weight.
    pub weight: f64,
}

impl ReconstructionLoss {
    /// A term of `kind` with `weight`.
    pub fn new(kind: Reconstruction, weight: f64) -> Self {
        ReconstructionLoss { kind, weight }
    }
}

impl Loss for ReconstructionLoss {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference`.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let r = input.need_reference(self.kind.name())?;
        self.kind.distance(input.output, r)
    }
}

/// Mean SSIM of two image batches `(N, C, H, W)` in `[-1, 1]`, as a scalar:
/// local means, variances and covariance under a normalised Gaussian window
/// (a convolution of each channel, without padding),
/// `SSIM = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))`.
pub fn ssim(a: &Tensor, b: &Tensor, window: usize, sigma: f64) -> Result<Tensor> {
    same_shape("ssim", a, b)?;
    let (_, c, h, w) = a.dims4()?;
    if window == 0 || window.is_multiple_of(2) || window > h || window > w || sigma <= 0.0 {
        return Err(Error::InvalidInput(format!(
            "SSIM needs an odd window no larger than the {h}x{w} images and σ > 0, got window {window}, σ {sigma}"
        )));
    }
    let half = (window / 2) as f64;
    let g: Vec<f64> = (0..window)
        .map(|i| (-((i as f64 - half).powi(2)) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = g.iter().sum();
    let mut k = Vec::with_capacity(window * window);
    for y in &g {
        for x in &g {
            k.push((y * x / (sum * sum)) as f32);
        }
    }
    let kernel = Tensor::from_vec(k, (1, 1, window, window), a.device())?.to_dtype(a.dtype())?;
    // Every channel of every image blurred alike: fold channels into the batch.
    let n = a.dim(0)?;
    let blur = |x: &Tensor| -> Result<Tensor> {
        Ok(x.reshape((n * c, 1, h, w))?.conv2d(&kernel, 0, 1, 1, 1)?)
    };
    let a = ((a + 1.0)? * 0.5)?;
    let b = ((b + 1.0)? * 0.5)?;
    let (c1, c2) = (0.01f64 * 0.01, 0.03f64 * 0.03);
    let mu_a = blur(&a)?;
    let mu_b = blur(&b)?;
    let mu_aa = mu_a.sqr()?;
    let mu_bb = mu_b.sqr()?;
    let mu_ab = (&mu_a * &mu_b)?;
    let var_a = (blur(&a.sqr()?)? - &mu_aa)?;
    let var_b = (blur(&b.sqr()?)? - &mu_bb)?;
    let cov = (blur(&(&a * &b)?)? - &mu_ab)?;
    let num = ((mu_ab * 2.0)? + c1)?.mul(&((cov * 2.0)? + c2)?)?;
    let den = ((mu_aa + mu_bb)? + c1)?.mul(&((var_a + var_b)? + c2)?)?;
    let s = (num / den)?;
    Ok(s.to_dtype(DType::F32)?.mean_all()?.to_dtype(a.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32], shape: (usize, usize, usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn scalar(x: Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn l1_and_l2_values() {
        // a − b = [−1, 0, −1, 0.5]:
        // L1 = (1 + 0 + 1 + 0.5) / 4 = 0.625, L2 = (1 + 0 + 1 + 0.25) / 4 = 0.5625.
        let a = t(&[0.0, 1.0, -1.0, 0.5], (1, 1, 2, 2));
        let b = t(&[1.0, 1.0, 0.0, 0.0], (1, 1, 2, 2));
        assert!((scalar(Reconstruction::L1.distance(&a, &b).unwrap()) - 0.625).abs() < 1e-6);
        assert!((scalar(Reconstruction::L2.distance(&a, &b).unwrap()) - 0.5625).abs() < 1e-6);
        // Through the trait, weighted by 2: 1.25.
        let loss = ReconstructionLoss::new(Reconstruction::L1, 2.0);
        let v = scalar(loss.weighted(&LossInput::new(&a).reference(&b)).unwrap());
        assert!((v - 1.25).abs() < 1e-6);
        assert_eq!(loss.name(), "l1");
        // Missing reference, mismatched shapes: typed errors.
        assert!(loss.compute(&LossInput::new(&a)).is_err());
        assert!(Reconstruction::L1
            .distance(&a, &t(&[0.0; 2], (1, 1, 1, 2)))
            .is_err());
    }

    #[test]
    fn ssim_values() {
        // Constant images: a = 0 and b = 1 in [-1, 1], i.e. 0.5 and 1.0 in
        // [0, 1]. A normalised window leaves constants as they are, so
        // μa = 0.5, μb = 1, σa² = σb² = σab = 0, and
        // SSIM = (2·0.5·1 + C1)(0 + C2) / ((0.25 + 1 + C1)(0 + C2))
        //      = 1.0001 / 1.2501 = 0.800016; the loss is 1 − SSIM = 0.199984.
        let a = t(&[0.0; 2 * 5 * 5], (1, 2, 5, 5));
        let b = t(&[1.0; 2 * 5 * 5], (1, 2, 5, 5));
        let kind = Reconstruction::Ssim {
            window: 3,
            sigma: 1.5,
        };
        let v = scalar(kind.distance(&a, &b).unwrap());
        assert!((v - 0.199984).abs() < 1e-5, "{v}");
        // Identical (non-constant) images: SSIM = 1, loss 0.
        let x: Vec<f32> = (0..50).map(|i| ((i * 7) % 11) as f32 / 5.5 - 1.0).collect();
        let x = t(&x, (1, 2, 5, 5));
        let v = scalar(kind.distance(&x, &x).unwrap());
        assert!(v.abs() < 1e-5, "{v}");
        // A window larger than the image is refused.
        assert!(Reconstruction::ssim().distance(&x, &x).is_err());
    }
}
