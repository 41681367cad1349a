//! A decoded cache: every face of a dataset decoded once at a training
//! resolution into one file of u8 pixels and labels, then memory-mapped.
//!
//! Decoding 22k JPEGs costs more per epoch than a small model's training
//! step; reading a memory-mapped cache costs almost nothing. The cache is
//! itself a [`FaceDataset`], so loaders use it like the dataset it was built
//! from.
//!
//! ## File format (little endian)
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 8 | magic `AGSCACHE` |
//! | 8 | 4 | format version ([`CACHE_VERSION`]) |
//! | 12 | 4 | image side `size` in pixels |
//! | 16 | 8 | face count `n` |
//! | 24 | 8 | fingerprint of the source (see [`fingerprint`]) |
//! | 32 | 8 | offset of the labels (`64 + n·size·size·3`) |
//! | 40 | 8 | length of the labels |
//! | 48 | 8 | offset of the pixels (64) |
//! | 56 | 8 | reserved (0) |
//! | 64 | `n·size·size·3` | RGB `HWC` bytes, face after face |
//! | labels | … | JSON `{"tag": …, "metas": [FaceMeta, …], "bad": [[index, reason], …]}` |
//!
//! A face whose file cannot be decoded (random bytes, a truncated JPEG, a
//! 1×1 image) does not stop the build: its pixels are left black, it is
//! listed in `bad` with the reason, and loading it is an error naming the
//! file, so that trainers skip it and report every bad file, and indices
//! (and so splits) stay those of the dataset.
//!
//! The fingerprint covers the tag, the size, every face's labels and its
//! file's length and modification time, so a cache built from other files,
//! other labels or another framing is detected as stale and rebuilt.
//! Building writes a temporary file and renames it, so an interrupted build
//! (a crash, or a stop asked for through the `cancel` check) never leaves a
//! half-written cache; a temporary file left by a killed build is removed by
//! the next build in that folder.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use agesynth_core::{io::atomic_write, Error, FaceDataset, FaceImage, FaceMeta, Result};
use memmap2::Mmap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::transform;

/// Magic bytes opening a cache file.
pub const CACHE_MAGIC: &[u8; 8] = b"AGSCACHE";
/// Version of the cache format this build reads and writes.
pub const CACHE_VERSION: u32 = 2;
const HEADER_LEN: usize = 64;
/// Faces decoded per parallel chunk while building.
const BUILD_CHUNK: usize = 256;

#[derive(Serialize, Deserialize)]
struct Labels {
    tag: String,
    metas: Vec<FaceMeta>,
    #[serde(default)]
    bad: Vec<(usize, String)>,
}

/// 64-bit FNV-1a, a stable hash for fingerprints.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate fields: "ab","c" must differ from "a","bc".
        self.0 ^= b.len() as u64;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

/// The fingerprint of `dataset` decoded at `size` under `tag` (a name for
/// how faces are framed, e.g. `"utkface"` or `"fgnet padding 0.2"`): a hash
/// of the tag, the size, every face's labels, and its file's length and
/// modification time.
pub fn fingerprint(dataset: &dyn FaceDataset, size: u32, tag: &str) -> u64 {
    let mut h = Fnv::new();
    h.bytes(&CACHE_VERSION.to_le_bytes());
    h.bytes(tag.as_bytes());
    h.bytes(&size.to_le_bytes());
    h.bytes(&(dataset.len() as u64).to_le_bytes());
    for i in 0..dataset.len() {
        let Some(m) = dataset.meta(i) else {
            h.bytes(b"<none>");
            continue;
        };
        h.bytes(m.path.to_string_lossy().as_bytes());
        h.bytes(&m.age.to_le_bytes());
        h.bytes(format!("{:?}{:?}{:?}", m.gender, m.race, m.subject).as_bytes());
        match std::fs::metadata(&m.path) {
            Ok(md) => {
                h.bytes(&md.len().to_le_bytes());
                let t = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                h.bytes(&t.to_le_bytes());
            }
            Err(_) => h.bytes(b"<missing>"),
        }
    }
    h.0
}

/// A memory-mapped cache of decoded faces; see the [module docs](self).
pub struct DecodedCache {
    path: PathBuf,
    map: Mmap,
    size: u32,
    count: usize,
    fingerprint: u64,
    pixels_offset: usize,
    tag: String,
    metas: Vec<FaceMeta>,
    bad: std::collections::BTreeMap<usize, String>,
}

impl std::fmt::Debug for DecodedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedCache")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("count", &self.count)
            .field("tag", &self.tag)
            .finish()
    }
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl DecodedCache {
    /// Decodes every face of `dataset` at `size`×`size` (in parallel on
    /// `threads` threads, 0 for one per core) and writes the cache to `path`
    /// atomically, then opens it. A face that cannot be decoded is recorded
    /// as bad (see [`DecodedCache::bad_faces`]) rather than failing the
    /// build.
    pub fn build(
        dataset: &dyn FaceDataset,
        size: u32,
        path: impl AsRef<Path>,
        tag: &str,
        threads: usize,
    ) -> Result<DecodedCache> {
        Self::build_cancellable(dataset, size, path, tag, threads, &|| false)
    }

    /// [`DecodedCache::build`], checking `cancel` between chunks of faces:
    /// when it returns true the build stops with
    /// [`Error::Interrupted`], leaving any previous file intact and no
    /// temporary file.
    pub fn build_cancellable(
        dataset: &dyn FaceDataset,
        size: u32,
        path: impl AsRef<Path>,
        tag: &str,
        threads: usize,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<DecodedCache> {
        use std::io::{Seek, SeekFrom};
        let path = path.as_ref();
        if size == 0 {
            return Err(Error::Config("cache image size must be positive".into()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            agesynth_core::io::clean_stale_temporaries(dir, false)?;
        }
        let n = dataset.len();
        let metas = (0..n)
            .map(|i| dataset.meta(i).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::InvalidInput("dataset has fewer metas than faces".into()))?;
        let fp = fingerprint(dataset, size, tag);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Config(format!("cannot start decoding threads: {e}")))?;
        let face_bytes = 3 * size as usize * size as usize;
        let header = |labels_offset: u64, labels_len: u64| {
            let mut h = Vec::with_capacity(HEADER_LEN);
            h.extend_from_slice(CACHE_MAGIC);
            h.extend_from_slice(&CACHE_VERSION.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&(n as u64).to_le_bytes());
            h.extend_from_slice(&fp.to_le_bytes());
            h.extend_from_slice(&labels_offset.to_le_bytes());
            h.extend_from_slice(&labels_len.to_le_bytes());
            h.extend_from_slice(&(HEADER_LEN as u64).to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes());
            h
        };
        let mut failure: Option<Error> = None;
        let written = atomic_write(path, |w| {
            w.write_all(&header(0, 0))?;
            let mut bad: Vec<(usize, String)> = Vec::new();
            let mut buf = vec![0u8; BUILD_CHUNK * face_bytes];
            for start in (0..n).step_by(BUILD_CHUNK) {
                if cancel() {
                    failure = Some(Error::Interrupted(format!(
                        "building the decoded cache {} ({start} of {n} faces done)",
                        path.display()
                    )));
                    return Err(std::io::Error::other("interrupted"));
                }
                let end = (start + BUILD_CHUNK).min(n);
                let chunk = &mut buf[..(end - start) * face_bytes];
                let results: Vec<Option<String>> = pool.install(|| {
                    chunk
                        .par_chunks_mut(face_bytes)
                        .enumerate()
                        .map(|(k, out)| {
                            let loaded = dataset.load(start + k, size).and_then(|img| {
                                if (img.width(), img.height()) != (size, size) {
                                    return Err(Error::InvalidInput(format!(
                                        "face {} loaded as {}x{}, not {size}x{size}",
                                        start + k,
                                        img.width(),
                                        img.height()
                                    )));
                                }
                                Ok(img)
                            });
                            match loaded {
                                Ok(img) => {
                                    out.copy_from_slice(img.pixels());
                                    None
                                }
                                Err(e) => {
                                    out.fill(0);
                                    Some(e.to_string())
                                }
                            }
                        })
                        .collect()
                });
                for (k, r) in results.into_iter().enumerate() {
                    if let Some(reason) = r {
                        bad.push((start + k, reason));
                    }
                }
                w.write_all(chunk)?;
            }
            let labels = serde_json::to_vec(&Labels {
                tag: tag.to_string(),
                metas,
                bad,
            })
            .map_err(std::io::Error::other)?;
            let labels_offset = (HEADER_LEN + n * face_bytes) as u64;
            w.write_all(&labels)?;
            w.seek(SeekFrom::Start(0))?;
            w.write_all(&header(labels_offset, labels.len() as u64))?;
            Ok(())
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written?;
        Self::open(path)
    }

    /// Opens an existing cache, checking its magic, version and length.
    pub fn open(path: impl AsRef<Path>) -> Result<DecodedCache> {
        let path = path.as_ref().to_path_buf();
        let bad = |reason: String| Error::dataset(&path, format!("bad decoded cache: {reason}"));
        let file = File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        // SAFETY: the map is read-only. Caches are written to a temporary
        // file and renamed into place, never modified in place, so the
        // mapped bytes do not change while mapped (unless another program
        // writes into the file, which is outside our contract).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("memory-mapping", &path, e))?;
        if map.len() < HEADER_LEN {
            return Err(bad(format!("{} bytes, shorter than its header", map.len())));
        }
        if &map[..8] != CACHE_MAGIC {
            return Err(bad("not a cache file (wrong magic)".into()));
        }
        let version = read_u32(&map, 8);
        if version != CACHE_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads {CACHE_VERSION}"
            )));
        }
        let size = read_u32(&map, 12);
        let count = read_u64(&map, 16);
        let fp = read_u64(&map, 24);
        let (lo, ll, po) = (read_u64(&map, 32), read_u64(&map, 40), read_u64(&map, 48));
        let pixels_end = (size as u64)
            .checked_mul(size as u64)
            .and_then(|a| a.checked_mul(3))
            .and_then(|face_bytes| count.checked_mul(face_bytes))
            .and_then(|p| p.checked_add(po));
        if size == 0
            || po != HEADER_LEN as u64
            || pixels_end != Some(lo)
            || lo.checked_add(ll) != Some(map.len() as u64)
        {
            return Err(bad(format!(
                "{} bytes do not match {count} faces of {size}x{size} (truncated or corrupt)",
                map.len()
            )));
        }
        let labels: Labels = serde_json::from_slice(&map[lo as usize..(lo + ll) as usize])
            .map_err(|e| bad(format!("labels: {e}")))?;
        if labels.metas.len() as u64 != count {
            return Err(bad(format!(
                "{} labels for {count} faces",
                labels.metas.len()
            )));
        }
        if let Some((i, _)) = labels.bad.iter().find(|(i, _)| *i as u64 >= count) {
            return Err(bad(format!("bad face {i} of {count}")));
        }
        Ok(DecodedCache {
            path,
            map,
            size,
            count: count as usize,
            fingerprint: fp,
            pixels_offset: po as usize,
            tag: labels.tag,
            metas: labels.metas,
            bad: labels.bad.into_iter().collect(),
        })
    }

    /// Opens the cache at `path` if it was built from this `dataset` at this
    /// `size` under this `tag` (same fingerprint), else (re)builds it. The
    /// flag tells whether it was built.
    pub fn open_or_build(
        dataset: &dyn FaceDataset,
        size: u32,
        path: impl AsRef<Path>,
        tag: &str,
        threads: usize,
    ) -> Result<(DecodedCache, bool)> {
        Self::open_or_build_cancellable(dataset, size, path, tag, threads, &|| false)
    }

    /// [`DecodedCache::open_or_build`] with a `cancel` check for the build
    /// (see [`DecodedCache::build_cancellable`]).
    pub fn open_or_build_cancellable(
        dataset: &dyn FaceDataset,
        size: u32,
        path: impl AsRef<Path>,
        tag: &str,
        threads: usize,
        cancel: &(dyn Fn() -> bool + Sync),
    ) -> Result<(DecodedCache, bool)> {
        let path = path.as_ref();
        // What a killed build left beside the cache.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            agesynth_core::io::clean_stale_temporaries(dir, false)?;
        }
        if path.exists() {
            if let Ok(c) = Self::open(path) {
                if c.size == size && c.fingerprint == fingerprint(dataset, size, tag) {
                    return Ok((c, false));
                }
            }
        }
        Ok((
            Self::build_cancellable(dataset, size, path, tag, threads, cancel)?,
            true,
        ))
    }

    /// Side of the cached images.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fingerprint of the source it was built from.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The tag it was built under.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The faces that could not be decoded when it was built: index and
    /// reason (the reason names the file), in index order.
    pub fn bad_faces(&self) -> impl Iterator<Item = (usize, &str)> {
        self.bad.iter().map(|(i, r)| (*i, r.as_str()))
    }

    /// The RGB bytes of face `index` (`size·size·3`, `HWC`), straight from
    /// the mapped file.
    pub fn pixels(&self, index: usize) -> Option<&[u8]> {
        if index >= self.count {
            return None;
        }
        let fb = 3 * self.size as usize * self.size as usize;
        let start = self.pixels_offset + index * fb;
        self.map.get(start..start + fb)
    }
}

impl FaceDataset for DecodedCache {
    fn len(&self) -> usize {
        self.count
    }

    fn meta(&self, index: usize) -> Option<&FaceMeta> {
        self.metas.get(index)
    }

    /// The cached face; at another size than the cache's it is resized from
    /// the cached pixels (sharper faces need a cache at that size).
    fn load(&self, index: usize, size: u32) -> Result<FaceImage> {
        if let Some(reason) = self.bad.get(&index) {
            return Err(Error::dataset(
                &self.path,
                format!("face {index} could not be decoded when the cache was built: {reason}"),
            ));
        }
        let px = self.pixels(index).ok_or_else(|| {
            Error::InvalidInput(format!(
                "face {index} of {} in cache {}",
                self.count,
                self.path.display()
            ))
        })?;
        let img = FaceImage::new(self.size, self.size, px.to_vec())?;
        if size == self.size {
            Ok(img)
        } else {
            transform::resize(&img, size, size)
        }
    }
}
