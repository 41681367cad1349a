//! Image filters on tensors that several crates apply to what a network
//! sees: Rec. 601 luminance and a separable Gaussian blur, both
//! differentiable (the generators' critics backpropagate through them).

use candle_core::Tensor;

use crate::{Error, Result};

/// Rec. 601 luma of `(N, 3, H, W)` images, repeated into three channels.
pub fn luma(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if c != 3 {
        return Err(Error::InvalidInput(format!(
            "luma: images have {c} channels, not 3"
        )));
    }
    let k = Tensor::from_vec(vec![0.299f32, 0.587, 0.114], (1, 3, 1, 1), x.device())?
        .to_dtype(x.dtype())?;
    let y = x.broadcast_mul(&k)?.sum_keepdim(1)?;
    Ok(y.broadcast_as((n, 3, h, w))?.contiguous()?)
}

/// A separable Gaussian blur of `(N, C, H, W)` images with standard
/// deviation `sigma` pixels (kernel radius ⌈2σ⌉, edges replicated),
/// differentiable (shifted slices and weighted sums only). `sigma <= 0`
/// returns the input.
pub fn gaussian_blur(x: &Tensor, sigma: f64) -> Result<Tensor> {
    if sigma <= 0.0 {
        return Ok(x.clone());
    }
    let r = (2.0 * sigma).ceil() as usize;
    let taps: Vec<f64> = (0..=2 * r)
        .map(|i| {
            let d = i as f64 - r as f64;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    let mut out = x.clone();
    for dim in [3, 2] {
        let len = out.dim(dim)?;
        let padded = out.pad_with_same(dim, r, r)?;
        let mut acc: Option<Tensor> = None;
        for (i, w) in taps.iter().enumerate() {
            let t = (padded.narrow(dim, i, len)? * (w / sum))?;
            acc = Some(match acc {
                Some(a) => (a + t)?,
                None => t,
            });
        }
        out = acc.ok_or_else(|| Error::InvalidInput("empty blur kernel".into()))?;
    }
    Ok(out)
}
