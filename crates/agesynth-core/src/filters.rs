//! Image filters on tensors that several crates apply to what a network
//! sees: Rec. 601 luminance (with its own gradient, or with a grey one) and
//! a separable Gaussian blur, all differentiable (the generators' critics
//! backpropagate through them).

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

/// Rec. 601 luma of `(N, 3, H, W)` images like [`luma`], with a gradient
/// that reaches the three channels equally (the channel mean's gradient,
/// passed straight through). Through [`luma`] a loss's gradient moves red,
/// green and blue in the ratio 0.299 : 0.587 : 0.114, so a network that sees
/// luminance darkens green most and paints magenta, blue or red where it
/// asks for a darker line; through this one it can only ask for a grey
/// change. The forward values are [`luma`]'s (to rounding), so a network
/// trained on [`luma`] judges the same.
pub fn luma_grey_gradient(x: &Tensor) -> Result<Tensor> {
    let y = luma(x)?;
    let m = x.mean_keepdim(1)?.broadcast_as(y.shape())?;
    Ok((&m + (y - &m)?.detach())?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_gradient_luma_keeps_values_and_spreads_gradients_evenly() {
        let x = candle_core::Var::from_tensor(
            &Tensor::from_vec(
                vec![0.9f32, -0.2, 0.4, 0.1, -0.7, 0.3],
                (1, 3, 1, 2),
                &candle_core::Device::Cpu,
            )
            .unwrap(),
        )
        .unwrap();
        let a = luma(x.as_tensor()).unwrap();
        let b = luma_grey_gradient(x.as_tensor()).unwrap();
        let d = (&a - &b).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        // d/dx of Σ w·y with w = (1, 2) per pixel: each channel gets 3·w/3 = w.
        let w = Tensor::from_vec(vec![1f32, 2.0], (1, 1, 1, 2), &candle_core::Device::Cpu).unwrap();
        let g = b
            .broadcast_mul(&w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = g
            .get(x.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for c in 0..3 {
            assert!((g[2 * c] - 1.0).abs() < 1e-6, "{g:?}");
            assert!((g[2 * c + 1] - 2.0).abs() < 1e-6, "{g:?}");
        }
    }
}
