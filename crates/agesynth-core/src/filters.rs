//! Image filters on tensors that several crates apply to what a network
//! sees: Rec. 601 luminance (with its own gradient, or with a grey one) and
//! a separable Gaussian blur and resampling, all differentiable (the generators' critics
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

/// Row-major `(dst, src)` resampling matrix taking `src` samples to `dst`
/// samples of the span `[start, start + extent)` (fractions of `src`), with
/// a triangle filter widened by the scale when shrinking. Outputs whose
/// centre lies outside the source are zero; the others are weighted
/// averages of the source samples.
pub fn resample_matrix(src: usize, dst: usize, start: f64, extent: f64) -> Vec<f32> {
    let scale = extent * src as f64 / dst as f64;
    let support = scale.max(1.0);
    let mut m = vec![0f32; dst * src];
    for i in 0..dst {
        let centre = start * src as f64 + (i as f64 + 0.5) * scale - 0.5;
        let lo = (centre - support).floor() as i64;
        let hi = (centre + support).ceil() as i64;
        let taps: Vec<(i64, f64)> = (lo..=hi)
            .map(|j| (j, (1.0 - (j as f64 - centre).abs() / support).max(0.0)))
            .filter(|&(_, w)| w > 0.0)
            .collect();
        // Outputs whose centre falls outside the image are black (as dlib's
        // chip extraction leaves them); the others renormalise over the taps
        // inside the image, so that edges are not darkened.
        if centre < -0.5 || centre > src as f64 - 0.5 {
            continue;
        }
        let inside = |j: i64| j >= 0 && (j as usize) < src;
        let total: f64 = taps.iter().filter(|t| inside(t.0)).map(|t| t.1).sum();
        for (j, w) in taps {
            if inside(j) {
                m[i * src + j as usize] = (w / total) as f32;
            }
        }
    }
    m
}

/// Resamples the square `[left, left + extent) × [top, top + extent)` of
/// each image of `images` `(N, C, H, W)` (fractions of the width and
/// height) to `(N, C, size, size)` with [`resample_matrix`]'s filter: a
/// triangle (bilinear when enlarging) widened by the scale when shrinking.
/// Differentiable with respect to `images`; `(0, 0, 1)` is the whole image.
pub fn resample(images: &Tensor, left: f64, top: f64, extent: f64, size: usize) -> Result<Tensor> {
    let (n, c, h, w) = images.dims4()?;
    if h == 0 || w == 0 || size == 0 {
        return Err(Error::InvalidInput(format!(
            "cannot resample a {h}x{w} image to {size}x{size}"
        )));
    }
    if (left, top, extent) == (0.0, 0.0, 1.0) && h == size && w == size {
        return Ok(images.clone());
    }
    let dev = images.device();
    let ry = Tensor::from_vec(resample_matrix(h, size, top, extent), (size, h), dev)?
        .to_dtype(images.dtype())?;
    let rx = Tensor::from_vec(resample_matrix(w, size, left, extent), (size, w), dev)?
        .to_dtype(images.dtype())?;
    let x = images.reshape((n * c, h, w))?;
    let x = ry.unsqueeze(0)?.broadcast_matmul(&x)?; // (nc, size, w)
    let x = x.broadcast_matmul(&rx.t()?.unsqueeze(0)?)?; // (nc, size, size)
    Ok(x.reshape((n, c, size, size))?)
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
