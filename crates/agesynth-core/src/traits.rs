//! The traits through which the models of agesynth compose.
//!
//! Every trait is object-safe, so a trainer or an evaluator can hold
//! `Box<dyn FaceEmbedder>` and so on, and each is implemented for references,
//! boxes and `Arc`s of an implementor. Images always travel as `(N, 3, H, W)`
//! f32 tensors in `[-1, 1]`, framed like the training chips.

use std::sync::Arc;

use candle_core::Tensor;

use crate::{AgeBins, AgeGroup, Result};

/// A generator conditioned on a target age group.
///
/// For FaceGAN the input is a batch of face images and the output the same
/// faces at the target groups; for the cStyleGAN the input is a batch of
/// latent vectors `(N, z_dim)` and the output new faces of those groups.
pub trait AgeGenerator: Send + Sync {
    /// Renders each row of `input` at the matching group of `targets`
    /// (`targets.len()` equals the batch size). Returns `(N, 3, S, S)` images in
    /// `[-1, 1]` where `S` is [`AgeGenerator::image_size`].
    fn generate(&self, input: &Tensor, targets: &[AgeGroup]) -> Result<Tensor>;

    /// The age groups the generator is conditioned on.
    fn age_bins(&self) -> &AgeBins;

    /// Side of the square images it produces.
    fn image_size(&self) -> usize;
}

/// What a discriminator says of a batch: realness logits and, for one with
/// an auxiliary age head, its age-group logits.
#[derive(Clone, Debug)]
pub struct DiscriminatorOutput {
    /// Raw (pre-sigmoid) realness scores: `(N,)` for a global discriminator
    /// or `(N, 1, h, w)` for a patch one.
    pub logits: Tensor,
    /// Age-group logits `(N, G)` of an auxiliary head, if there is one.
    pub class_logits: Option<Tensor>,
}

/// A discriminator conditioned on the age group the image claims to show:
/// what a GAN trainer needs of it, so that a trainer can hold any
/// discriminator as `Box<dyn ConditionalDiscriminator>`.
pub trait ConditionalDiscriminator: Send + Sync {
    /// Raw (pre-sigmoid) realness scores of `images` as faces of `groups`:
    /// `(N,)` for a global discriminator or `(N, 1, h, w)` for a patch one.
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor>;

    /// The age groups it is conditioned on.
    fn age_bins(&self) -> &AgeBins;

    /// The realness logits and the auxiliary age head's logits, in one
    /// pass. The default has no age head.
    fn judge(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<DiscriminatorOutput> {
        Ok(DiscriminatorOutput {
            logits: self.logits(images, groups)?,
            class_logits: None,
        })
    }

    /// The logits and their directional derivative along `tangent` (the
    /// shape of `images`) by forward-mode differentiation, both
    /// differentiable in the weights: what an exact R1 penalty needs (candle
    /// has no double backward). The default says the discriminator has none,
    /// so a trainer with R1 switched on refuses it with that message.
    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        let _ = (images, tangent, groups);
        Err(crate::Error::InvalidInput(
            "this discriminator has no forward-mode derivative (logits_jvp): R1 needs one; \
             switch R1 off (r1_gamma 0) or implement it"
                .into(),
        ))
    }
}

/// A face-recognition network: faces to identity embeddings.
///
/// Implementations must be differentiable with respect to the input images,
/// since the identity loss backpropagates through them.
pub trait FaceEmbedder: Send + Sync {
    /// Embeddings `(N, D)` of a batch of face images.
    fn embed(&self, images: &Tensor) -> Result<Tensor>;

    /// Embedding size `D`.
    fn dim(&self) -> usize;

    /// L2 distance below which two embeddings are judged the same person.
    fn threshold(&self) -> f32;
}

/// An age estimator: faces to ages in years.
pub trait AgeEstimator: Send + Sync {
    /// Estimated ages `(N,)` in years, f32.
    fn estimate(&self, images: &Tensor) -> Result<Tensor>;
}

/// An age-group classifier: faces to logits of the age groups.
///
/// Implementations must be differentiable with respect to the input images:
/// the generators' age term backpropagates through them.
pub trait AgeClassifier: Send + Sync {
    /// Group logits `(N, G)` of a batch of face images.
    fn group_logits(&self, images: &Tensor) -> Result<Tensor>;

    /// Group logits `(N, G)` of faces whose gender is known: a classifier
    /// that models age given gender reads each row's age among faces of its
    /// gender (`None`: unknown, read among all faces). The default ignores
    /// the genders.
    fn group_logits_given_gender(
        &self,
        images: &Tensor,
        genders: &[Option<crate::Gender>],
    ) -> Result<Tensor> {
        let _ = genders;
        self.group_logits(images)
    }

    /// The groups it classifies.
    fn age_bins(&self) -> &AgeBins;
}

/// A male/female classifier: faces to logits `(N, 2)` in the order male,
/// female.
///
/// Implementations must be differentiable with respect to the input images:
/// a generator's gender-keeping term backpropagates through them.
pub trait GenderClassifier: Send + Sync {
    /// Logits `(N, 2)` (male, female) of a batch of face images.
    fn gender_logits(&self, images: &Tensor) -> Result<Tensor>;
}

/// A frozen critic of realism: how much each face looks like a real photo
/// of a person of its age group (and gender, where known), as a logit
/// (higher: more real). A cStyleGAN's discriminator, trained on real faces
/// against generated ones, is one.
///
/// Implementations must be differentiable with respect to the input images:
/// a generator's realism term backpropagates through them.
pub trait RealismCritic: Send + Sync {
    /// Logits `(N,)` that `images (N, 3, S, S)` are real photos of people of
    /// `groups` and `genders` (`None`: unknown, judged without it).
    fn realism_logits(
        &self,
        images: &Tensor,
        groups: &[AgeGroup],
        genders: &[Option<crate::Gender>],
    ) -> Result<Tensor>;

    /// The groups it was trained on.
    fn age_bins(&self) -> &AgeBins;
}

macro_rules! forward_impls {
    ($tr:ident { $($body:tt)* }) => {
        impl<T: $tr + ?Sized> $tr for &T { $($body)* }
        impl<T: $tr + ?Sized> $tr for Box<T> { $($body)* }
        impl<T: $tr + ?Sized> $tr for Arc<T> { $($body)* }
    };
}

forward_impls!(AgeGenerator {
    fn generate(&self, input: &Tensor, targets: &[AgeGroup]) -> Result<Tensor> {
        (**self).generate(input, targets)
    }
    fn age_bins(&self) -> &AgeBins {
        (**self).age_bins()
    }
    fn image_size(&self) -> usize {
        (**self).image_size()
    }
});

forward_impls!(ConditionalDiscriminator {
    fn logits(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<Tensor> {
        (**self).logits(images, groups)
    }
    fn age_bins(&self) -> &AgeBins {
        (**self).age_bins()
    }
    fn judge(&self, images: &Tensor, groups: &[AgeGroup]) -> Result<DiscriminatorOutput> {
        (**self).judge(images, groups)
    }
    fn logits_jvp(
        &self,
        images: &Tensor,
        tangent: &Tensor,
        groups: &[AgeGroup],
    ) -> Result<(Tensor, Tensor)> {
        (**self).logits_jvp(images, tangent, groups)
    }
});

forward_impls!(FaceEmbedder {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        (**self).embed(images)
    }
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn threshold(&self) -> f32 {
        (**self).threshold()
    }
});

forward_impls!(GenderClassifier {
    fn gender_logits(&self, images: &Tensor) -> Result<Tensor> {
        (**self).gender_logits(images)
    }
});

forward_impls!(RealismCritic {
    fn realism_logits(
        &self,
        images: &Tensor,
        groups: &[AgeGroup],
        genders: &[Option<crate::Gender>],
    ) -> Result<Tensor> {
        (**self).realism_logits(images, groups, genders)
    }
    fn age_bins(&self) -> &AgeBins {
        (**self).age_bins()
    }
});

forward_impls!(AgeEstimator {
    fn estimate(&self, images: &Tensor) -> Result<Tensor> {
        (**self).estimate(images)
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// An embedder that averages each channel: enough to prove the traits are
    /// object-safe and forward through boxes and references.
    struct ChannelMean;
    impl FaceEmbedder for ChannelMean {
        fn embed(&self, images: &Tensor) -> Result<Tensor> {
            Ok(images.mean((2, 3))?)
        }
        fn dim(&self) -> usize {
            3
        }
        fn threshold(&self) -> f32 {
            0.5
        }
    }

    #[test]
    fn traits_are_object_safe_and_forward() {
        let boxed: Box<dyn FaceEmbedder> = Box::new(ChannelMean);
        let by_ref: &dyn FaceEmbedder = &boxed;
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 2, 2))
            .unwrap();
        let e = by_ref.embed(&x).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(e, vec![vec![1.5, 5.5, 9.5]]);
        assert_eq!(by_ref.dim(), 3);
    }
}

forward_impls!(AgeClassifier {
    fn group_logits(&self, images: &Tensor) -> Result<Tensor> {
        (**self).group_logits(images)
    }
    fn group_logits_given_gender(
        &self,
        images: &Tensor,
        genders: &[Option<crate::Gender>],
    ) -> Result<Tensor> {
        (**self).group_logits_given_gender(images, genders)
    }
    fn age_bins(&self) -> &AgeBins {
        (**self).age_bins()
    }
});
