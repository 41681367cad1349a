//! A batch of faces: the unit every model and loss consumes.

use candle_core::{DType, Device, Tensor};

use crate::{AgeBins, AgeGroup, Error, FaceImage, Result};

/// A batch of `N` faces: images as an `(N, 3, H, W)` f32 tensor in `[-1, 1]`,
/// with each face's age in years and its age group.
#[derive(Clone, Debug)]
pub struct FaceBatch {
    /// `(N, 3, H, W)`, f32, values in `[-1, 1]`.
    pub images: Tensor,
    /// Age of each face in years.
    pub ages: Vec<f32>,
    /// Age group of each face.
    pub groups: Vec<AgeGroup>,
}

impl FaceBatch {
    /// A batch from its parts, checking that the shapes agree.
    pub fn new(images: Tensor, ages: Vec<f32>, groups: Vec<AgeGroup>) -> Result<Self> {
        let dims = images.dims();
        if dims.len() != 4 || dims[1] != 3 {
            return Err(Error::InvalidInput(format!(
                "face batch images must be (N, 3, H, W), got {dims:?}"
            )));
        }
        if ages.len() != dims[0] || groups.len() != dims[0] {
            return Err(Error::InvalidInput(format!(
                "face batch of {} images has {} ages and {} groups",
                dims[0],
                ages.len(),
                groups.len()
            )));
        }
        Ok(FaceBatch {
            images,
            ages,
            groups,
        })
    }

    /// A batch from decoded images of one size, grouping ages with `bins`.
    pub fn from_images(
        images: &[FaceImage],
        ages: &[f32],
        bins: &AgeBins,
        device: &Device,
    ) -> Result<Self> {
        let first = images
            .first()
            .ok_or_else(|| Error::InvalidInput("a face batch needs at least one image".into()))?;
        let (w, h) = (first.width(), first.height());
        if ages.len() != images.len() {
            return Err(Error::InvalidInput(format!(
                "{} images but {} ages",
                images.len(),
                ages.len()
            )));
        }
        let mut data = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
        for img in images {
            if (img.width(), img.height()) != (w, h) {
                return Err(Error::InvalidInput(format!(
                    "images of one batch must share a size: {w}x{h} and {}x{}",
                    img.width(),
                    img.height()
                )));
            }
            data.extend(img.to_chw_f32());
        }
        let groups = ages
            .iter()
            .map(|&a| bins.group(a))
            .collect::<Result<Vec<_>>>()?;
        let t = Tensor::from_vec(data, (images.len(), 3, h as usize, w as usize), device)?;
        FaceBatch::new(t, ages.to_vec(), groups)
    }

    /// Number of faces.
    pub fn len(&self) -> usize {
        self.ages.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.ages.is_empty()
    }

    /// `(height, width)` of the images.
    pub fn image_size(&self) -> (usize, usize) {
        let d = self.images.dims();
        (d[2], d[3])
    }

    /// One-hot age codes, `(N, bins.len())`, on the images' device.
    pub fn one_hot(&self, bins: &AgeBins) -> Result<Tensor> {
        bins.one_hot_tensor(&self.groups, self.images.device())
    }

    /// The batch on another device.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(FaceBatch {
            images: self.images.to_device(device)?,
            ages: self.ages.clone(),
            groups: self.groups.clone(),
        })
    }

    /// The images as bytes again (`x * 127.5 + 127.5`, rounded and clamped),
    /// one [`FaceImage`] per face: for writing samples.
    pub fn to_images(&self) -> Result<Vec<FaceImage>> {
        tensor_to_images(&self.images)
    }
}

/// Converts an `(N, 3, H, W)` tensor in `[-1, 1]` to 8-bit RGB images
/// (values outside the range are clamped).
pub fn tensor_to_images(images: &Tensor) -> Result<Vec<FaceImage>> {
    let (n, c, h, w) = images.dims4()?;
    if c != 3 {
        return Err(Error::InvalidInput(format!("expected 3 channels, got {c}")));
    }
    let bytes = ((images.to_dtype(DType::F32)? + 1.0)? * 127.5)?
        .clamp(0f32, 255f32)?
        .round()?
        .permute((0, 2, 3, 1))?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()?;
    bytes
        .chunks_exact(h * w * 3)
        .take(n)
        .map(|px| FaceImage::new(w as u32, h as u32, px.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_images_round_trips_bytes() {
        let bins = AgeBins::default();
        let a = FaceImage::new(2, 1, vec![0, 64, 128, 200, 255, 7]).unwrap();
        let b = FaceImage::new(2, 1, vec![9, 8, 7, 6, 5, 4]).unwrap();
        let batch =
            FaceBatch::from_images(&[a.clone(), b.clone()], &[3.0, 61.0], &bins, &Device::Cpu)
                .unwrap();
        assert_eq!(batch.images.dims(), &[2, 3, 1, 2]);
        assert_eq!(batch.groups, vec![AgeGroup(0), AgeGroup(5)]);
        assert_eq!(batch.to_images().unwrap(), vec![a, b]);
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let t = Tensor::zeros((2, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(FaceBatch::new(t.clone(), vec![1.0], vec![AgeGroup(0)]).is_err());
        let t1 = Tensor::zeros((2, 1, 4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(FaceBatch::new(t1, vec![1.0; 2], vec![AgeGroup(0); 2]).is_err());
        let bins = AgeBins::default();
        let a = FaceImage::new(2, 1, vec![0; 6]).unwrap();
        let b = FaceImage::new(1, 2, vec![0; 6]).unwrap();
        assert!(FaceBatch::from_images(&[a, b], &[1.0, 2.0], &bins, &Device::Cpu).is_err());
    }
}
