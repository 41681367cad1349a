//! The synthetic-pairs dataset: N synthetic identities, each rendered at
//! every age group, written by `agesynth synth-pairs` and read by the FaceGAN
//! trainer.
//!
//! Layout of the folder:
//! ```text
//! index.json                 PairsIndex: sizes, groups, shards, provenance
//! shard-00000.safetensors    images u8 (n, groups, 3, S, S) CHW, latents f32 (n, z_dim)
//! shard-00001.safetensors    ...
//! ```
//! Shards are written atomically and `index.json` last, so a folder with an
//! index is complete. The reader memory-maps the shards and copies only the
//! images a batch asks for.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

use agesynth_core::{AgeBins, AgeGroup, FaceBatch, FaceDataset, FaceImage, FaceMeta};
use candle_core::{Device, Tensor};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// The format name in `index.json`.
pub const FORMAT: &str = "agesynth-synth-pairs";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

/// One shard in the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the folder.
    pub file: String,
    /// Identities in the shard.
    pub count: usize,
}

/// `index.json` of a synthetic-pairs folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairsIndex {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// Side of the square images.
    pub image_size: usize,
    /// Lower bounds of the age groups (an [`AgeBins`]).
    pub age_bins: Vec<f32>,
    /// Length of each identity's latent.
    pub z_dim: usize,
    /// Identities in all shards.
    pub count: usize,
    /// The shards in order.
    pub shards: Vec<ShardEntry>,
    /// Free-form provenance: model file, truncation, seed, ...
    pub source: serde_json::Value,
}

/// Writes a synthetic-pairs folder shard by shard.
pub struct PairsWriter {
    dir: PathBuf,
    index: PairsIndex,
    shard_size: usize,
    groups: usize,
    images: Vec<u8>,
    latents: Vec<f32>,
    pending: usize,
}

impl PairsWriter {
    /// Starts a folder at `dir` (created if needed) for images of
    /// `image_size` at every group of `bins`, with latents of `z_dim`,
    /// `shard_size` identities per shard.
    pub fn create(
        dir: impl Into<PathBuf>,
        image_size: usize,
        bins: &AgeBins,
        z_dim: usize,
        shard_size: usize,
        source: serde_json::Value,
    ) -> Result<Self> {
        let dir = dir.into();
        if dir.join("index.json").exists() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "{} already holds a synthetic-pairs set (index.json): choose another folder",
                dir.display()
            ))
            .into());
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| agesynth_core::Error::io("creating folder", &dir, e))?;
        Ok(PairsWriter {
            dir,
            index: PairsIndex {
                format: FORMAT.to_string(),
                version: VERSION,
                image_size,
                age_bins: bins.lower_bounds().to_vec(),
                z_dim,
                count: 0,
                shards: Vec::new(),
                source,
            },
            shard_size: shard_size.max(1),
            groups: bins.len(),
            images: Vec::new(),
            latents: Vec::new(),
            pending: 0,
        })
    }

    /// Adds identities: `images` is `(n, groups, 3, S, S)` in `[-1, 1]` (any
    /// float dtype, any device; clamped and rounded to u8), `latents`
    /// `(n, z_dim)`.
    pub fn push(&mut self, images: &Tensor, latents: &Tensor) -> Result<()> {
        let s = self.index.image_size;
        let (n, g, c, h, w) = images.dims5()?;
        if (g, c, h, w) != (self.groups, 3, s, s) {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "pairs need images (n, {}, 3, {s}, {s}), got {:?}",
                self.groups,
                images.dims()
            ))
            .into());
        }
        if latents.dims() != [n, self.index.z_dim] {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "pairs need latents ({n}, {}), got {:?}",
                self.index.z_dim,
                latents.dims()
            ))
            .into());
        }
        let bytes = ((images.to_dtype(candle_core::DType::F32)? + 1.0)? * 127.5)?
            .clamp(0f32, 255f32)?
            .round()?
            .to_dtype(candle_core::DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        let lat = latents
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let per_img = g * 3 * s * s;
        for i in 0..n {
            self.images
                .extend_from_slice(&bytes[i * per_img..(i + 1) * per_img]);
            self.latents
                .extend_from_slice(&lat[i * self.index.z_dim..(i + 1) * self.index.z_dim]);
            self.pending += 1;
            if self.pending == self.shard_size {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let s = self.index.image_size;
        let n = self.pending;
        let file = format!("shard-{:05}.safetensors", self.index.shards.len());
        let images = Tensor::from_vec(
            std::mem::take(&mut self.images),
            (n, self.groups, 3, s, s),
            &Device::Cpu,
        )?;
        let latents = Tensor::from_vec(
            std::mem::take(&mut self.latents),
            (n, self.index.z_dim),
            &Device::Cpu,
        )?;
        agesynth_core::io::save_tensors(
            self.dir.join(&file),
            &HashMap::from([
                ("images".to_string(), images),
                ("latents".to_string(), latents),
            ]),
            None,
        )?;
        self.index.shards.push(ShardEntry { file, count: n });
        self.index.count += n;
        self.pending = 0;
        Ok(())
    }

    /// Identities written or buffered so far.
    pub fn count(&self) -> usize {
        self.index.count + self.pending
    }

    /// Writes the last shard and `index.json`; returns the index.
    pub fn finish(mut self) -> Result<PairsIndex> {
        self.flush()?;
        agesynth_core::io::save_json(self.dir.join("index.json"), &self.index)?;
        Ok(self.index)
    }
}

pub use agesynth_critic::pair_filter::{GenderCheck, PairFilter, PairVerdict};

/// The gender of each identity of `pairs` as a gender critic reads it: the
/// mean female probability over its renders from group `from_group` up (a
/// child's gender is hard to read), `None` where that mean lies within
/// `margin` of ½. These label the synthetic rows for an age-given-gender
/// critic (the pairs carry no gender of their own).
pub fn identity_genders(
    pairs: &SynthPairs,
    critic: &agesynth_critic::GenderCritic,
    from_group: usize,
    margin: f32,
    device: &Device,
) -> Result<Vec<Option<agesynth_core::Gender>>> {
    let g = pairs.bins().len();
    let from = from_group.min(g - 1);
    let groups: Vec<AgeGroup> = (from..g).map(AgeGroup).collect();
    let k = groups.len();
    let n = pairs.identities();
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(64) {
        let ids: Vec<usize> = (start..(start + 64).min(n)).collect();
        let (id_rows, group_rows): (Vec<usize>, Vec<AgeGroup>) = ids
            .iter()
            .flat_map(|&i| groups.iter().map(move |&gr| (i, gr)))
            .unzip();
        let x = pairs.batch(&id_rows, &group_rows, device)?.images;
        let p = critic
            .female_probability(&x)?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        out.extend(p.chunks(k).map(|row| {
            let mean = row.iter().sum::<f32>() / k as f32;
            if (mean - 0.5).abs() <= margin {
                None
            } else if mean > 0.5 {
                Some(agesynth_core::Gender::Female)
            } else {
                Some(agesynth_core::Gender::Male)
            }
        }));
    }
    Ok(out)
}

struct Shard {
    path: PathBuf,
    map: Mmap,
    images_at: usize,
    latents_at: usize,
    count: usize,
}

/// A synthetic-pairs folder opened for reading.
///
/// As a [`FaceDataset`] it lists every (identity, group) image, identity-major
/// (`index = identity · groups + group`), with the group's centre as the age
/// and the identity as the subject; [`SynthPairs::pair_batch`] gives the
/// FaceGAN trainer source and target batches of the same identities.
pub struct SynthPairs {
    dir: PathBuf,
    index: PairsIndex,
    bins: AgeBins,
    shards: Vec<Shard>,
    /// (shard, row) of each identity.
    locate: Vec<(u32, u32)>,
    metas: Vec<FaceMeta>,
}

fn bad(path: &Path, reason: impl Into<String>) -> TrainError {
    agesynth_core::Error::dataset(path, reason).into()
}

impl SynthPairs {
    /// Opens the folder `dir`, checking the index against every shard.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let index_path = dir.join("index.json");
        let index: PairsIndex = agesynth_core::io::load_json(&index_path)?;
        if index.format != FORMAT || index.version != VERSION {
            return Err(bad(
                &index_path,
                format!(
                    "format `{}` version {}, expected `{FORMAT}` version {VERSION}",
                    index.format, index.version
                ),
            ));
        }
        let bins =
            AgeBins::new(index.age_bins.clone()).map_err(|e| bad(&index_path, e.to_string()))?;
        let (g, s, zd) = (bins.len(), index.image_size, index.z_dim);
        if s == 0 || zd == 0 || g == 0 {
            // Zero-sized tensors would let a shard claim any number of
            // identities in no bytes.
            return Err(bad(
                &index_path,
                format!("image size {s}, latent size {zd} and {g} age groups must all be positive"),
            ));
        }
        // No capacity from the (untrusted) index: the shards' sizes bound
        // what is pushed.
        let mut shards = Vec::new();
        let mut locate = Vec::new();
        for (si, entry) in index.shards.iter().enumerate() {
            if entry.file.contains('/') || entry.file.contains('\\') || entry.file.contains("..") {
                return Err(bad(
                    &index_path,
                    format!("shard name `{}` is not a plain file name", entry.file),
                ));
            }
            let path = dir.join(&entry.file);
            let file =
                File::open(&path).map_err(|e| agesynth_core::Error::io("opening", &path, e))?;
            // SAFETY: the shard is read-only for the life of the map; shards are
            // written once, atomically (by rename), and never modified in place.
            let map = unsafe { Mmap::map(&file) }
                .map_err(|e| agesynth_core::Error::io("memory-mapping", &path, e))?;
            let (header, meta) =
                safetensors::SafeTensors::read_metadata(&map).map_err(|source| {
                    agesynth_core::Error::Safetensors {
                        path: path.clone(),
                        source,
                    }
                })?;
            let n = entry.count;
            let find = |name: &str, dtype: safetensors::Dtype, shape: &[usize]| -> Result<usize> {
                let info = meta
                    .info(name)
                    .ok_or_else(|| bad(&path, format!("no tensor `{name}`")))?;
                if info.dtype != dtype || info.shape != shape {
                    return Err(bad(
                        &path,
                        format!(
                            "tensor `{name}` is {:?} {:?}, expected {dtype:?} {shape:?}",
                            info.dtype, info.shape
                        ),
                    ));
                }
                let start = 8 + header + info.data_offsets.0;
                let end = 8 + header + info.data_offsets.1;
                if end > map.len() {
                    return Err(bad(
                        &path,
                        format!("tensor `{name}` runs past the end of the file"),
                    ));
                }
                Ok(start)
            };
            let images_at = find("images", safetensors::Dtype::U8, &[n, g, 3, s, s])?;
            let latents_at = find("latents", safetensors::Dtype::F32, &[n, zd])?;
            for row in 0..n {
                locate.push((si as u32, row as u32));
            }
            shards.push(Shard {
                path,
                map,
                images_at,
                latents_at,
                count: n,
            });
        }
        if locate.len() != index.count {
            return Err(bad(
                &index_path,
                format!(
                    "index says {} identities, shards hold {}",
                    index.count,
                    locate.len()
                ),
            ));
        }
        let metas = (0..index.count)
            .flat_map(|i| {
                let dir = dir.clone();
                bins.groups().map(move |grp| (i, grp, dir.clone()))
            })
            .map(|(i, grp, dir)| FaceMeta {
                path: dir.join(format!("identity-{i}-group-{}", grp.index())),
                age: bins.centre(grp),
                gender: None,
                race: None,
                subject: Some(i as u32),
            })
            .collect();
        Ok(SynthPairs {
            dir,
            index,
            bins,
            shards,
            locate,
            metas,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The index.
    pub fn index(&self) -> &PairsIndex {
        &self.index
    }

    /// The age groups.
    pub fn bins(&self) -> &AgeBins {
        &self.bins
    }

    /// Number of identities.
    pub fn identities(&self) -> usize {
        self.index.count
    }

    /// Side of the square images.
    pub fn image_size(&self) -> usize {
        self.index.image_size
    }

    fn check(&self, identity: usize, group: AgeGroup) -> Result<()> {
        if identity >= self.identities() || group.index() >= self.bins.len() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "identity {identity} / group {} out of {} identities and {} groups",
                group.index(),
                self.identities(),
                self.bins.len()
            ))
            .into());
        }
        Ok(())
    }

    /// The CHW bytes of `identity` at `group`.
    pub fn chw_bytes(&self, identity: usize, group: AgeGroup) -> Result<&[u8]> {
        self.check(identity, group)?;
        let (si, row) = self.locate[identity];
        let shard = &self.shards[si as usize];
        let per = 3 * self.index.image_size * self.index.image_size;
        let at = shard.images_at + (row as usize * self.bins.len() + group.index()) * per;
        Ok(&shard.map[at..at + per])
    }

    /// `identity` at `group` as an RGB image.
    pub fn image(&self, identity: usize, group: AgeGroup) -> Result<FaceImage> {
        let chw = self.chw_bytes(identity, group)?;
        let hw = self.index.image_size * self.index.image_size;
        let mut px = vec![0u8; 3 * hw];
        for i in 0..hw {
            for c in 0..3 {
                px[3 * i + c] = chw[c * hw + i];
            }
        }
        Ok(FaceImage::new(
            self.index.image_size as u32,
            self.index.image_size as u32,
            px,
        )?)
    }

    /// The latent of `identity`.
    pub fn latent(&self, identity: usize) -> Result<Vec<f32>> {
        self.check(identity, AgeGroup(0))?;
        let (si, row) = self.locate[identity];
        let shard = &self.shards[si as usize];
        let zd = self.index.z_dim;
        let at = shard.latents_at + row as usize * zd * 4;
        let bytes = shard.map.get(at..at + zd * 4).ok_or_else(|| {
            bad(
                &shard.path,
                format!("latent {row} of {} runs past the end", shard.count),
            )
        })?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// A batch of `identities[k]` at `groups[k]`, in `[-1, 1]`.
    pub fn batch(
        &self,
        identities: &[usize],
        groups: &[AgeGroup],
        device: &Device,
    ) -> Result<FaceBatch> {
        if identities.len() != groups.len() {
            return Err(agesynth_core::Error::InvalidInput(format!(
                "{} identities but {} groups",
                identities.len(),
                groups.len()
            ))
            .into());
        }
        let s = self.index.image_size;
        let mut data = Vec::with_capacity(identities.len() * 3 * s * s);
        for (&i, &g) in identities.iter().zip(groups) {
            data.extend(
                self.chw_bytes(i, g)?
                    .iter()
                    .map(|&p| p as f32 / 127.5 - 1.0),
            );
        }
        let images = Tensor::from_vec(data, (identities.len(), 3, s, s), device)?;
        let ages = groups.iter().map(|&g| self.bins.centre(g)).collect();
        Ok(FaceBatch::new(images, ages, groups.to_vec())?)
    }

    /// Source and target batches of the same identities: `identities[k]` at
    /// `sources[k]` and at `targets[k]` (the supervised pairs of FaceGAN).
    pub fn pair_batch(
        &self,
        identities: &[usize],
        sources: &[AgeGroup],
        targets: &[AgeGroup],
        device: &Device,
    ) -> Result<(FaceBatch, FaceBatch)> {
        Ok((
            self.batch(identities, sources, device)?,
            self.batch(identities, targets, device)?,
        ))
    }
}

impl FaceDataset for SynthPairs {
    fn len(&self) -> usize {
        self.metas.len()
    }

    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        self.metas.get(index)
    }

    /// Loads image `index` (identity-major) at `size` (nearest-neighbour or
    /// box resampling from the stored size; the stored size costs a copy).
    fn load(&self, index: usize, size: u32) -> agesynth_core::Result<FaceImage> {
        let g = self.bins.len();
        let img = self
            .image(index / g, AgeGroup(index % g))
            .map_err(|e| agesynth_core::Error::dataset(&self.dir, e.to_string()))?;
        if size as usize == self.index.image_size {
            return Ok(img);
        }
        resize_box(&img, size)
    }
}

/// Area-average (down) or nearest (up) resampling of a square image.
fn resize_box(img: &FaceImage, size: u32) -> agesynth_core::Result<FaceImage> {
    let (src, dst) = (img.width() as usize, size as usize);
    if dst == 0 {
        return Err(agesynth_core::Error::InvalidInput("size 0".into()));
    }
    let mut out = vec![0u8; 3 * dst * dst];
    for y in 0..dst {
        let (y0, y1) = (
            y * src / dst,
            ((y + 1) * src).div_ceil(dst).max(y * src / dst + 1),
        );
        for x in 0..dst {
            let (x0, x1) = (
                x * src / dst,
                ((x + 1) * src).div_ceil(dst).max(x * src / dst + 1),
            );
            for c in 0..3 {
                let mut sum = 0u32;
                for yy in y0..y1.min(src) {
                    for xx in x0..x1.min(src) {
                        sum += img.pixels()[3 * (yy * src + xx) + c] as u32;
                    }
                }
                let n = ((y1.min(src) - y0) * (x1.min(src) - x0)) as u32;
                out[3 * (y * dst + x) + c] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    FaceImage::new(size, size, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Embeds an image as its mean colour (three numbers).
    struct MeanColour;

    impl agesynth_core::FaceEmbedder for MeanColour {
        fn embed(&self, images: &Tensor) -> agesynth_core::Result<Tensor> {
            Ok(images.mean(3)?.mean(2)?)
        }
        fn dim(&self) -> usize {
            3
        }
        fn threshold(&self) -> f32 {
            0.5
        }
    }

    #[test]
    fn the_pair_filter_drops_an_identity_that_changes_between_groups() {
        let dev = Device::Cpu;
        // Identity 0: grey at every group. Identity 1: grey, then red from
        // group 2 on (a jump of 1 in the red channel at one boundary).
        // Identity 2: drifts by 0.1 per group (never more than 0.1 at once).
        let (g, s) = (4usize, 2usize);
        let mut v = vec![0f32; 3 * g * 3 * s * s];
        for id in 0..3 {
            for grp in 0..g {
                for c in 0..3 {
                    let val = match (id, c) {
                        (1, 0) if grp >= 2 => 1.0,
                        (2, _) => 0.1 * grp as f32,
                        _ => 0.0,
                    };
                    let at = ((id * g + grp) * 3 + c) * s * s;
                    v[at..at + s * s].fill(val);
                }
            }
        }
        let renders = Tensor::from_vec(v, (3, g, 3, s, s), &dev).unwrap();
        let f = PairFilter {
            embedder: std::sync::Arc::new(MeanColour),
            max_distance: 0.5,
            gender: None,
        };
        let d = f.inconsistency(&renders).unwrap();
        assert!(d[0].abs() < 1e-6, "{d:?}");
        assert!((d[1] - 1.0).abs() < 1e-5, "{d:?}");
        // A step of 0.1 in each of three channels: 0.1·√3.
        assert!((d[2] - 0.1 * 3f32.sqrt()).abs() < 1e-5, "{d:?}");
        let kept: Vec<bool> = f
            .judge(&renders)
            .unwrap()
            .into_iter()
            .map(|x| x.keep)
            .collect();
        assert_eq!(kept, [true, false, true]);
        assert!(f.judge(&renders).unwrap().iter().all(|v| v.one_gender));
    }

    #[test]
    fn identity_genders_read_the_renders_from_the_first_group_asked() {
        use agesynth_core::Gender;
        use agesynth_critic::{CriticConfig, GenderCritic};
        let dev = Device::Cpu;
        // A gender critic that reads brightness: positive trunk weights keep
        // the sign of the input, the head says female for bright faces.
        let map = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&map, candle_core::DType::F32, &dev);
        let critic = GenderCritic::new(&CriticConfig::tiny_gender(), vb).unwrap();
        for (name, var) in map.data().lock().unwrap().iter() {
            let t = var.as_tensor();
            let v = if name == "classes.weight" {
                let c = t.dim(1).unwrap();
                let row: Vec<f32> = (0..2 * c)
                    .map(|k| if k < c { -100.0 } else { 100.0 })
                    .collect();
                Tensor::from_vec(row, t.shape(), &dev).unwrap()
            } else if name.ends_with("weight") {
                t.ones_like().unwrap().affine(0.05, 0.0).unwrap()
            } else {
                t.zeros_like().unwrap()
            };
            var.set(&v).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let bins = AgeBins::default();
        let (sz, g) = (16usize, bins.len());
        // Identity 0 bright throughout, 1 dark, 2 dark only as a child, 3
        // bright twice and dark three times from group 1 up.
        let level = |id: usize, grp: usize| -> f32 {
            match (id, grp) {
                (0, _) => 0.8,
                (1, _) => -0.8,
                (2, 0) => -0.8,
                (2, _) => 0.8,
                (3, 1 | 2) => 0.8,
                _ => -0.8,
            }
        };
        let vals: Vec<f32> = (0..4)
            .flat_map(|i| (0..g).flat_map(move |k| std::iter::repeat_n(level(i, k), 3 * sz * sz)))
            .collect();
        let images = Tensor::from_vec(vals, (4, g, 3, sz, sz), &dev).unwrap();
        let mut w =
            PairsWriter::create(dir.path(), sz, &bins, 2, 8, serde_json::json!({})).unwrap();
        w.push(
            &images,
            &Tensor::zeros((4, 2), candle_core::DType::F32, &dev).unwrap(),
        )
        .unwrap();
        w.finish().unwrap();
        let pairs = SynthPairs::open(dir.path()).unwrap();
        let got = identity_genders(&pairs, &critic, 1, 0.1, &dev).unwrap();
        assert_eq!(
            got,
            vec![
                Some(Gender::Female),
                Some(Gender::Male),
                Some(Gender::Female),
                None
            ]
        );
        // Identity 3's mean, 0.4, is unsure within 0.1 of ½ but male within
        // 0.05; from group 0 the child's render counts (identity 2 at 5 : 1).
        let narrow = identity_genders(&pairs, &critic, 1, 0.05, &dev).unwrap();
        assert_eq!(narrow[3], Some(Gender::Male));
        let all = identity_genders(&pairs, &critic, 0, 0.4, &dev).unwrap();
        assert_eq!(all[2], None);
    }

    #[test]
    fn write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let bins = AgeBins::default();
        let (s, g, zd) = (4usize, bins.len(), 3usize);
        let mut w =
            PairsWriter::create(dir.path(), s, &bins, zd, 2, serde_json::json!({"seed": 1}))
                .unwrap();
        // Identity i, group k: every value (i·6 + k)/40 − 0.5 → distinct bytes.
        let n = 5;
        let vals: Vec<f32> = (0..n)
            .flat_map(|i| {
                (0..g).flat_map(move |k| {
                    std::iter::repeat_n((i * g + k) as f32 / 40.0 - 0.5, 3 * s * s)
                })
            })
            .collect();
        let images = Tensor::from_vec(vals, (n, g, 3, s, s), &Device::Cpu).unwrap();
        let lat = Tensor::arange(0f32, (n * zd) as f32, &Device::Cpu)
            .unwrap()
            .reshape((n, zd))
            .unwrap();
        w.push(
            &images.narrow(0, 0, 3).unwrap(),
            &lat.narrow(0, 0, 3).unwrap(),
        )
        .unwrap();
        w.push(
            &images.narrow(0, 3, 2).unwrap(),
            &lat.narrow(0, 3, 2).unwrap(),
        )
        .unwrap();
        let idx = w.finish().unwrap();
        assert_eq!((idx.count, idx.shards.len()), (5, 3));

        let p = SynthPairs::open(dir.path()).unwrap();
        assert_eq!((p.identities(), p.len()), (5, 5 * g));
        assert_eq!(p.latent(3).unwrap(), vec![9.0, 10.0, 11.0]);
        let expect =
            |i: usize, k: usize| (((i * g + k) as f32 / 40.0 - 0.5 + 1.0) * 127.5).round() as u8;
        assert!(p
            .chw_bytes(4, AgeGroup(5))
            .unwrap()
            .iter()
            .all(|&b| b == expect(4, 5)));
        let (src, tgt) = p
            .pair_batch(
                &[1, 4],
                &[AgeGroup(0), AgeGroup(2)],
                &[AgeGroup(5), AgeGroup(1)],
                &Device::Cpu,
            )
            .unwrap();
        let t = tgt.images.to_dtype(candle_core::DType::F32).unwrap();
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((v[0] - (expect(1, 5) as f32 / 127.5 - 1.0)).abs() < 1e-6);
        assert_eq!(src.groups, vec![AgeGroup(0), AgeGroup(2)]);
        // As a FaceDataset: identity-major, age = group centre, subject = identity.
        let m = p.meta(2 * g + 3).unwrap();
        assert_eq!((m.subject, m.age), (Some(2), bins.centre(AgeGroup(3))));
        let img = p.load(2 * g + 3, 4).unwrap();
        assert!(img.pixels().iter().all(|&b| b == expect(2, 3)));
        assert_eq!(p.load(0, 2).unwrap().width(), 2);
        assert!(p.batch(&[5], &[AgeGroup(0)], &Device::Cpu).is_err());

        // A second set cannot overwrite the first.
        assert!(PairsWriter::create(dir.path(), s, &bins, zd, 2, serde_json::json!({})).is_err());
        // A truncated shard is a clear error naming it.
        let shard = dir.path().join("shard-00001.safetensors");
        let bytes = std::fs::read(&shard).unwrap();
        std::fs::write(&shard, &bytes[..bytes.len() - 7]).unwrap();
        let msg = SynthPairs::open(dir.path()).err().unwrap().to_string();
        assert!(msg.contains("shard-00001"), "{msg}");
    }
}
