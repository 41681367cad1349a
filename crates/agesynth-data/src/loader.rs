//! A batch loader: decodes faces in parallel and prefetches upcoming batches
//! on a background thread while the training step runs.
//!
//! Memory is bounded: at most [`LoaderConfig::prefetch`] finished batches wait
//! in the queue, plus the one being decoded. Results are deterministic: the
//! order of an epoch and every face's augmentation are functions of
//! `(seed, epoch, position)` only, never of which thread ran first.

use std::{
    sync::{mpsc, Arc},
    thread::JoinHandle,
};

use agesynth_core::{candle_core::Device, AgeBins, Error, FaceBatch, FaceDataset, Result};
use candle_core::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    sampler::{self, Order},
    transform::{mix_seed, normalise_into, Augment},
};

/// How a [`BatchLoader`] batches, orders, augments and prefetches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Faces per batch.
    pub batch_size: usize,
    /// Side of the square images, in pixels.
    pub image_size: u32,
    /// Visiting order of an epoch.
    pub order: Order,
    /// Augmentation applied to every face (use [`Augment::none`] for
    /// evaluation).
    pub augment: Augment,
    /// Drop a last, smaller batch.
    pub drop_last: bool,
    /// Seed of orders and augmentations.
    pub seed: u64,
    /// Batches decoded ahead (the bound on the queue); at least 1.
    pub prefetch: usize,
    /// Decoding threads; 0 for one per core.
    pub threads: usize,
    /// Age groups of the batches.
    pub bins: AgeBins,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            image_size: 128,
            order: Order::Shuffled,
            augment: Augment::default(),
            drop_last: true,
            seed: 0,
            prefetch: 2,
            threads: 0,
            bins: AgeBins::default(),
        }
    }
}

/// Loads batches of faces from a dataset; see the [module docs](self).
pub struct BatchLoader {
    dataset: Arc<dyn FaceDataset>,
    indices: Vec<usize>,
    buckets: Vec<Vec<usize>>,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for BatchLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchLoader")
            .field("faces", &self.indices.len())
            .field("config", &self.config)
            .finish()
    }
}

impl BatchLoader {
    /// A loader over the faces `indices` of `dataset` (e.g. one side of a
    /// [`Split`](crate::Split)).
    pub fn new(
        dataset: Arc<dyn FaceDataset>,
        indices: Vec<usize>,
        config: LoaderConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 || config.image_size == 0 {
            return Err(Error::Config(format!(
                "batch size and image size must be positive, got {} and {}",
                config.batch_size, config.image_size
            )));
        }
        if let Some(&i) = indices.iter().find(|&&i| i >= dataset.len()) {
            return Err(Error::InvalidInput(format!(
                "index {i} past the end of a dataset of {} faces",
                dataset.len()
            )));
        }
        let buckets = match config.order {
            Order::Balanced => sampler::by_group(dataset.as_ref(), &indices, &config.bins)?,
            _ => Vec::new(),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("agesynth-decode-{i}"))
            .build()
            .map_err(|e| Error::Config(format!("cannot start decoding threads: {e}")))?;
        Ok(BatchLoader {
            dataset,
            indices,
            buckets,
            config,
            pool: Arc::new(pool),
        })
    }

    /// A loader over every face of `dataset`.
    pub fn all(dataset: Arc<dyn FaceDataset>, config: LoaderConfig) -> Result<Self> {
        let n = dataset.len();
        Self::new(dataset, (0..n).collect(), config)
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Faces per epoch (before dropping a last partial batch).
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True when the loader has no face.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.indices.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The faces of `epoch` in visiting order (dataset indices).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        match self.config.order {
            Order::Sequential => self.indices.clone(),
            Order::Shuffled => sampler::shuffled(&self.indices, self.config.seed, epoch),
            Order::Balanced => {
                sampler::balanced(&self.buckets, self.indices.len(), self.config.seed, epoch)
            }
        }
    }

    /// Decodes one batch in the calling thread's pool: faces
    /// `order[start..end]` of `epoch`.
    fn decode_batch(&self, epoch: u64, order: &[usize], start: usize) -> Result<FaceBatch> {
        decode_batch(
            &self.pool,
            self.dataset.as_ref(),
            &self.config,
            epoch,
            order,
            start,
        )
    }

    /// Batch `k` of `epoch`, decoded now (no prefetching).
    pub fn batch(&self, epoch: u64, k: usize) -> Result<FaceBatch> {
        let order = self.epoch_order(epoch);
        let b = self.config.batch_size;
        if k >= self.batches_per_epoch() {
            return Err(Error::InvalidInput(format!(
                "batch {k} of an epoch of {} batches",
                self.batches_per_epoch()
            )));
        }
        let end = ((k + 1) * b).min(order.len());
        self.decode_batch(epoch, &order[..end], k * b)
    }

    /// The batches of `epoch`, decoded ahead on a background thread. Dropping
    /// the iterator stops the thread. After an error the iterator ends.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let order = self.epoch_order(epoch);
        let batches = self.batches_per_epoch();
        let (tx, rx) = mpsc::sync_channel(self.config.prefetch.max(1));
        let dataset = Arc::clone(&self.dataset);
        let config = self.config.clone();
        let pool = Arc::clone(&self.pool);
        let handle = std::thread::Builder::new()
            .name("agesynth-prefetch".into())
            .spawn(move || {
                let b = config.batch_size;
                for k in 0..batches {
                    let end = ((k + 1) * b).min(order.len());
                    let batch = decode_batch(
                        &pool,
                        dataset.as_ref(),
                        &config,
                        epoch,
                        &order[..end],
                        k * b,
                    );
                    let failed = batch.is_err();
                    // The receiver is gone: the consumer stopped early.
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
        match handle {
            Ok(h) => EpochIter {
                rx: Some(rx),
                handle: Some(h),
                spawn_error: None,
                remaining: batches,
            },
            Err(e) => EpochIter {
                rx: None,
                handle: None,
                spawn_error: Some(Error::Config(format!("cannot start prefetch thread: {e}"))),
                remaining: 0,
            },
        }
    }
}

/// Decodes, augments and normalises faces `order[start..]` into a batch.
fn decode_batch(
    pool: &rayon::ThreadPool,
    dataset: &dyn FaceDataset,
    config: &LoaderConfig,
    epoch: u64,
    order: &[usize],
    start: usize,
) -> Result<FaceBatch> {
    let items = &order[start..];
    let size = config.image_size as usize;
    let plane = 3 * size * size;
    let mut data = vec![0f32; items.len() * plane];
    pool.install(|| {
        data.par_chunks_mut(plane)
            .zip(items.par_iter().enumerate())
            .try_for_each(|(out, (k, &i))| -> Result<()> {
                let img = dataset.load(i, config.image_size)?;
                let pos = (start + k) as u64;
                let img = config.augment.apply(
                    &img,
                    mix_seed(config.seed, epoch, pos.wrapping_add(1 << 40)),
                );
                normalise_into(&img, out)
            })
    })?;
    let mut ages = Vec::with_capacity(items.len());
    for &i in items {
        let meta = dataset
            .meta(i)
            .ok_or_else(|| Error::InvalidInput(format!("index {i} past the dataset's end")))?;
        ages.push(meta.age);
    }
    let groups = ages
        .iter()
        .map(|&a| config.bins.group(a))
        .collect::<Result<Vec<_>>>()?;
    let images = Tensor::from_vec(data, (items.len(), 3, size, size), &Device::Cpu)?;
    FaceBatch::new(images, ages, groups)
}

/// The batches of one epoch; see [`BatchLoader::epoch`].
pub struct EpochIter {
    rx: Option<mpsc::Receiver<Result<FaceBatch>>>,
    handle: Option<JoinHandle<()>>,
    spawn_error: Option<Error>,
    remaining: usize,
}

impl Iterator for EpochIter {
    type Item = Result<FaceBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.spawn_error.take() {
            return Some(Err(e));
        }
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(Ok(b)) => {
                self.remaining = self.remaining.saturating_sub(1);
                Some(Ok(b))
            }
            Ok(Err(e)) => {
                self.rx = None;
                Some(Err(e))
            }
            Err(_) => {
                self.rx = None;
                if self.remaining > 0 {
                    self.remaining = 0;
                    Some(Err(Error::Config(
                        "the prefetch thread stopped before the end of the epoch".into(),
                    )))
                } else {
                    None
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            0,
            Some(self.remaining + usize::from(self.spawn_error.is_some())),
        )
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel makes the thread's next send fail and return.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
