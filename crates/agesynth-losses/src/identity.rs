//! Identity loss: the distance between the identity embeddings of the
//! generated faces and of the reference (input) faces, backpropagated
//! through the embedder into the generator.

use agesynth_core::{FaceEmbedder, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

use crate::loss::{same_shape, Loss, LossInput};

/// How embeddings are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingDistance {
    /// Euclidean distance `√(Σ (a − b)² + ε)` per face (ε = 10⁻⁸ keeps the
    /// gradient finite when the faces coincide), averaged: the distance
    /// dlib's 0.6 threshold is set on.
    #[default]
    L2,
    /// `1 − cos(a, b)` per face, averaged.
    Cosine,
}

/// Mean embedding distance between rows of `a` and `b` `(N, D)`.
pub fn embedding_distance(a: &Tensor, b: &Tensor, kind: EmbeddingDistance) -> Result<Tensor> {
    same_shape("identity", a, b)?;
    match kind {
        EmbeddingDistance::L2 => Ok(((a - b)?.sqr()?.sum(D::Minus1)? + 1e-8)?
            .sqrt()?
            .mean_all()?),
        EmbeddingDistance::Cosine => {
            let dot = (a * b)?.sum(D::Minus1)?;
            let na = (a.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
            let nb = (b.sqr()?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
            Ok(((dot / (na * nb)?)?.neg()? + 1.0)?.mean_all()?)
        }
    }
}

/// The identity term: `weight · mean distance(embed(output), embed(reference))`.
/// The reference's embedding is detached (it is the fixed goal); the
/// output's is differentiable, so the gradient reaches the generator.
pub struct IdentityLoss<'e> {
    /// The identity network.
    pub embedder: &'e dyn FaceEmbedder,
    /// How embeddings are compared.
    pub distance: EmbeddingDistance,
    /// Its weight.
    pub weight: f64,
}

impl IdentityLoss<'_> {
    /// The loss given the reference embeddings already computed (a trainer
    /// embeds the inputs once and compares several outputs to them).
    pub fn against_embeddings(&self, output: &Tensor, reference: &Tensor) -> Result<Tensor> {
        let e = self.embedder.embed(output)?;
        embedding_distance(&e, &reference.detach(), self.distance)
    }
}

impl Loss for IdentityLoss<'_> {
    fn name(&self) -> &str {
        "identity"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference`.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let r = input.need_reference("identity")?;
        same_shape("identity", input.output, r)?;
        let er = self.embedder.embed(&r.detach())?;
        self.against_embeddings(input.output, &er)
    }
}

/// [`IdentityLoss`] owning a shared embedder, for objectives that keep their
/// terms (an identity network trained apart, never one the evaluation
/// judges with).
#[derive(Clone)]
pub struct SharedIdentityLoss {
    /// The identity network.
    pub embedder: std::sync::Arc<dyn FaceEmbedder>,
    /// How embeddings are compared.
    pub distance: EmbeddingDistance,
    /// Its weight.
    pub weight: f64,
    /// Standard deviation (pixels) of a Gaussian blur applied to both
    /// images before embedding (0: none): a small embedder then judges the
    /// face's structure, not pixel-scale patterns a generator could tune to
    /// it.
    pub blur_sigma: f64,
    /// Whether the embedder sees both images' luminance only (with the
    /// output's gradient spread evenly over its channels:
    /// [`agesynth_core::filters::luma_grey_gradient`]): its gradient then
    /// moves the output's channels alike and cannot paint colour.
    pub luma: bool,
}

impl std::fmt::Debug for SharedIdentityLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedIdentityLoss")
            .field("dim", &self.embedder.dim())
            .field("distance", &self.distance)
            .field("weight", &self.weight)
            .field("blur_sigma", &self.blur_sigma)
            .field("luma", &self.luma)
            .finish()
    }
}

impl Loss for SharedIdentityLoss {
    fn name(&self) -> &str {
        "identity"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` and `reference`.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        let r = input.need_reference("identity")?;
        let mut out = crate::age::gaussian_blur(input.output, self.blur_sigma)?;
        let mut r = crate::age::gaussian_blur(&r.detach(), self.blur_sigma)?;
        if self.luma {
            out = agesynth_core::filters::luma_grey_gradient(&out)?;
            r = crate::age::luma(&r)?;
        }
        IdentityLoss {
            embedder: self.embedder.as_ref(),
            distance: self.distance,
            weight: self.weight,
        }
        .compute(&LossInput::new(&out).reference(&r))
    }
}

/// Contrastive identity loss (InfoNCE) between two views `a`, `b` `(N, D)`
/// of the same `N` identities, row `i` of each being identity `i`: the
/// cross-entropy of telling each row's partner from the other rows' by
/// `−‖a_i − b_j‖² / temperature`, averaged over both directions. Unlike the
/// mean distance it asks for identification: a pair may lie close and still
/// lose to another identity lying closer, and the loss says so. `N < 2` is
/// an error (there is nothing to tell apart).
pub fn contrastive_identity(a: &Tensor, b: &Tensor, temperature: f64) -> Result<Tensor> {
    contrastive_identity_with_negatives(a, b, None, temperature)
}

/// [`contrastive_identity`] with more identities to tell apart: `negatives`
/// `(M, D)` are further views of the `b` kind, of identities other than the
/// batch's (a queue of earlier batches' `b`, for example, as MoCo keeps),
/// which each `a_i` must lie farther from than from `b_i`. They join the
/// `a → b` direction only (the `b → a` direction has no such views) and take
/// no gradient. `M = 0` (or `None`) is [`contrastive_identity`].
pub fn contrastive_identity_with_negatives(
    a: &Tensor,
    b: &Tensor,
    negatives: Option<&Tensor>,
    temperature: f64,
) -> Result<Tensor> {
    same_shape("contrastive identity", a, b)?;
    let n = a.dim(0)?;
    if n < 2 || !(temperature.is_finite() && temperature > 0.0) {
        return Err(agesynth_core::Error::InvalidInput(format!(
            "a contrastive identity loss needs at least 2 rows and a positive temperature, got {n} and {temperature}"
        )));
    }
    let negatives = match negatives {
        Some(q) if q.dim(0)? > 0 => {
            if q.rank() != 2 || q.dim(1)? != a.dim(1)? {
                return Err(agesynth_core::Error::InvalidInput(format!(
                    "contrastive identity: negatives of shape {:?} for descriptors of shape {:?}",
                    q.dims(),
                    a.dims()
                )));
            }
            Some(q.detach().to_dtype(a.dtype())?)
        }
        _ => None,
    };
    // ‖x_i − y_j‖² = ‖x_i‖² + ‖y_j‖² − 2 x_i·y_j, as a matrix; logits −d²/T.
    let logits = |x: &Tensor, y: &Tensor| -> Result<Tensor> {
        let xx = x.sqr()?.sum_keepdim(D::Minus1)?;
        let yy = y.sqr()?.sum_keepdim(D::Minus1)?.t()?;
        let xy = x.matmul(&y.t()?)?;
        let d2 = ((xy * -2.0)?.broadcast_add(&xx)?.broadcast_add(&yy))?;
        Ok((d2 * (-1.0 / temperature))?)
    };
    let ab = logits(a, b)?;
    // The mean over rows of −log p(partner): the partner is column i of row i.
    let diag = |l: &Tensor| -> Result<Tensor> {
        let lp = candle_nn::ops::log_softmax(l, D::Minus1)?.narrow(1, 0, n)?;
        let eye = Tensor::eye(n, lp.dtype(), lp.device())?;
        Ok(((lp * eye)?.sum_all()? * (-1.0 / n as f64))?)
    };
    let forward = match &negatives {
        Some(q) => diag(&Tensor::cat(&[&ab, &logits(a, q)?], 1)?)?,
        None => diag(&ab)?,
    };
    Ok(((forward + diag(&ab.t()?.contiguous()?)?)? * 0.5)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// An embedder averaging each channel: linear, so values are easy to
    /// work out by hand.
    struct ChannelMean;
    impl FaceEmbedder for ChannelMean {
        fn embed(&self, images: &Tensor) -> Result<Tensor> {
            Ok(images.mean((2, 3))?)
        }
        fn dim(&self) -> usize {
            3
        }
        fn threshold(&self) -> f32 {
            0.6
        }
    }

    fn constant(rgb: [f32; 3]) -> Tensor {
        let v: Vec<f32> = rgb.iter().flat_map(|&c| [c; 4]).collect();
        Tensor::from_vec(v, (1, 3, 2, 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn identity_values_and_gradient() {
        // Embeddings (0.3, 0.4, 0) and (0, 0, 0): L2 = √(0.09 + 0.16 + 1e-8) = 0.5.
        let out = Var::from_tensor(&constant([0.3, 0.4, 0.0])).unwrap();
        let reference = constant([0.0, 0.0, 0.0]);
        let loss = IdentityLoss {
            embedder: &ChannelMean,
            distance: EmbeddingDistance::L2,
            weight: 3.0,
        };
        let input = LossInput::new(out.as_tensor()).reference(&reference);
        let v = loss.compute(&input).unwrap();
        assert!((v.to_scalar::<f32>().unwrap() - 0.5).abs() < 1e-6);
        // Weighted: 1.5.
        let w = loss.weighted(&input).unwrap();
        assert!((w.to_scalar::<f32>().unwrap() - 1.5).abs() < 1e-6);
        // d/dx of 3·‖mean(x) − 0‖: each pixel of channel c gets
        // 3 · (e_c / ‖e‖) / 4 = 3·0.6/4 = 0.45 (red), 3·0.8/4 = 0.6 (green), 0 (blue).
        let grads = w.backward().unwrap();
        let g = grads
            .get(out.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            (g[0] - 0.45).abs() < 1e-5 && (g[4] - 0.6).abs() < 1e-5 && g[8].abs() < 1e-7,
            "{g:?}"
        );
        // Equal faces: distance √1e-8 = 1e-4, and a finite gradient.
        let same = embedding_distance(
            &ChannelMean.embed(&reference).unwrap(),
            &ChannelMean.embed(&reference).unwrap(),
            EmbeddingDistance::L2,
        )
        .unwrap();
        assert!((same.to_scalar::<f32>().unwrap() - 1e-4).abs() < 1e-6);
    }

    #[test]
    fn identity_through_luma_moves_the_channels_alike() {
        let out = Var::from_tensor(&constant([0.3, 0.4, 0.0])).unwrap();
        let reference = constant([0.0, 0.0, 0.0]);
        let loss = SharedIdentityLoss {
            embedder: std::sync::Arc::new(ChannelMean),
            distance: EmbeddingDistance::L2,
            weight: 1.0,
            blur_sigma: 0.0,
            luma: true,
        };
        let v = loss
            .compute(&LossInput::new(out.as_tensor()).reference(&reference))
            .unwrap();
        // Luma 0.299·0.3 + 0.587·0.4 = 0.3245 in every channel: L2 = 0.3245·√3.
        let want = 0.3245 * 3f32.sqrt();
        assert!((v.to_scalar::<f32>().unwrap() - want).abs() < 1e-4);
        let g = v.backward().unwrap();
        let g = g
            .get(out.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Red, green and blue pixels get the same gradient (the blue
        // channel, at 0 in the image, moves too): a grey change only.
        assert!((g[4] / g[0] - 1.0).abs() < 1e-4, "{g:?}");
        assert!((g[8] / g[0] - 1.0).abs() < 1e-4, "{g:?}");
    }

    #[test]
    fn cosine_value() {
        // (1, 0, 0) against (1, 1, 0): cos = 1/√2, 1 − cos = 0.292893.
        let a = ChannelMean.embed(&constant([1.0, 0.0, 0.0])).unwrap();
        let b = ChannelMean.embed(&constant([1.0, 1.0, 0.0])).unwrap();
        let v = embedding_distance(&a, &b, EmbeddingDistance::Cosine)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((v - 0.292893).abs() < 1e-5, "{v}");
        assert!(
            embedding_distance(&a, &b.narrow(1, 0, 2).unwrap(), EmbeddingDistance::L2).is_err()
        );
    }

    /// Checks the gradient of scalar `f` at a fixed (3, 2) f64 point against
    /// central finite differences.
    fn assert_gradient_matches_finite_differences(f: impl Fn(&Tensor) -> Tensor) {
        let dev = Device::Cpu;
        let x0 = Tensor::new(&[[0.3f64, -0.2], [0.1, 0.4], [-0.5, 0.2]], &dev).unwrap();
        let x = Var::from_tensor(&x0).unwrap();
        let g = f(x.as_tensor())
            .backward()
            .unwrap()
            .get(x.as_tensor())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let h = 1e-6;
        for i in 0..3 {
            for k in 0..2 {
                let mut v = x0.to_vec2::<f64>().unwrap();
                v[i][k] += h;
                let plus = f(&Tensor::new(v.clone(), &dev).unwrap())
                    .to_scalar::<f64>()
                    .unwrap();
                v[i][k] -= 2.0 * h;
                let minus = f(&Tensor::new(v, &dev).unwrap())
                    .to_scalar::<f64>()
                    .unwrap();
                let fd = (plus - minus) / (2.0 * h);
                assert!(
                    (fd - g[i][k]).abs() < 1e-6,
                    "({i},{k}) fd {fd} grad {}",
                    g[i][k]
                );
            }
        }
    }

    #[test]
    fn the_contrastive_loss_rewards_identification_and_matches_its_gradient() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [-1.0, 0.0]], &dev).unwrap();
        // Matched views: each row's partner is itself; swapped: rows 0 and 2 exchanged.
        let matched = contrastive_identity(&a, &a, 0.5)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let swapped = Tensor::new(&[[-1f32, 0.0], [0.0, 1.0], [1.0, 0.0]], &dev).unwrap();
        let wrong = contrastive_identity(&a, &swapped, 0.5)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(matched < 0.2 && wrong > 2.0, "{matched} {wrong}");
        // By hand for row 0 of the matched case: distances 0, 2, 4 → logits 0, −4, −8.
        let row0 = (1.0 + (-4f32).exp() + (-8f32).exp()).ln();
        let row1 = (1.0 + 2.0 * (-4f32).exp()).ln();
        let want = (2.0 * row0 + row1) / 3.0;
        assert!((matched - want).abs() < 1e-5, "{matched} {want}");
        assert!(contrastive_identity(
            &a.narrow(0, 0, 1).unwrap(),
            &a.narrow(0, 0, 1).unwrap(),
            0.5
        )
        .is_err());
        assert!(contrastive_identity(&a, &a, 0.0).is_err());
        // The gradient against finite differences (f64).
        let y = Tensor::new(&[[0.2f64, -0.1], [0.0, 0.5], [-0.4, 0.1]], &dev).unwrap();
        assert_gradient_matches_finite_differences(|x| contrastive_identity(x, &y, 0.3).unwrap());
    }

    #[test]
    fn queued_negatives_join_one_direction_and_match_their_gradient() {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[1f64, 0.0], [-1.0, 0.0]], &dev).unwrap();
        let q = Tensor::new(&[[0f64, 0.0]], &dev).unwrap();
        let v = |neg: Option<&Tensor>| {
            contrastive_identity_with_negatives(&a, &a, neg, 1.0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        // No negatives, or none queued yet: the plain loss.
        let plain = contrastive_identity(&a, &a, 1.0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(v(None), plain);
        assert_eq!(v(Some(&q.narrow(0, 0, 0).unwrap())), plain);
        // By hand: a → b rows see distances 0, 4 and 1 (the negative), b → a
        // rows 0 and 4.
        let want = 0.5 * ((1.0 + (-4f64).exp() + (-1f64).exp()).ln() + (1.0 + (-4f64).exp()).ln());
        assert!((v(Some(&q)) - want).abs() < 1e-12, "{} {want}", v(Some(&q)));
        // A negative lying farther than every partner changes little.
        let far = Tensor::new(&[[30f64, 30.0]], &dev).unwrap();
        assert!((v(Some(&far)) - plain).abs() < 1e-9);
        assert!(contrastive_identity_with_negatives(
            &a,
            &a,
            Some(&Tensor::zeros((1, 3), DType::F64, &dev).unwrap()),
            1.0
        )
        .is_err());
        // The gradient against finite differences (f64), negatives held.
        let y = Tensor::new(&[[0.2f64, -0.1], [0.0, 0.5], [-0.4, 0.1]], &dev).unwrap();
        let q = Tensor::new(&[[0.25f64, 0.0], [-0.1, 0.3]], &dev).unwrap();
        assert_gradient_matches_finite_differences(|x| {
            contrastive_identity_with_negatives(x, &y, Some(&q), 0.3).unwrap()
        });
    }
}
