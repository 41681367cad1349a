//! Run folders and atomic checkpoints.
//!
//! A run lives in one folder:
//! ```text
//! runs/NAME/
//!   config.json              what the run was started with
//!   log.jsonl                one JSON object per log interval
//!   samples/step-000500.png  sample grids
//!   lock                     the writer's process id, while one runs
//!   checkpoints/
//!     latest                 the name of the newest complete checkpoint
//!     step-000500/           model.safetensors, optim.safetensors, ...,
//!                            data.json, manifest.json, meta.json
//! ```
//! A checkpoint is written into a hidden temporary folder, every file synced,
//! its manifest (sizes and SHA-256 of every file) written, and the folder
//! renamed to `step-NNNNNN` only once complete; `latest` is then replaced
//! atomically. A crash or a refused save (a NaN weight) leaves the previous
//! checkpoint and `latest` as they were. Only the newest `keep` checkpoints
//! are kept; an old one is renamed to a hidden `.trash-*` folder before it is
//! deleted, so a crash never leaves half a checkpoint.
//!
//! A run folder has one writer ([`RunDir::open`], the trainer), which holds
//! its lock and, on start, removes what killed writers left behind.
//! Readers ([`RunDir::open_read_only`], [`load_model`]) never create or
//! delete anything in it. A checkpoint that fails [`Checkpoint::verify`] is
//! skipped for the previous intact one, and named in a warning.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use agesynth_core::io;
use candle_core::{DType, Device, Tensor};
use serde::{de::DeserializeOwned, Serialize};

use crate::{Result, TrainError};

/// The name of the pointer file to the newest checkpoint.
pub const LATEST: &str = "latest";

/// The folder name of the checkpoint at `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:06}")
}

fn parse_step_dir(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// A tensor file of a checkpoint: its name, tensors and header metadata.
type TensorPart = (
    String,
    HashMap<String, Tensor>,
    Option<HashMap<String, String>>,
);

/// What one checkpoint holds: named tensor files (each `NAME.safetensors`,
/// with optional header metadata) and named JSON files (`NAME.json`).
#[derive(Default, Clone)]
pub struct CheckpointContents {
    tensors: Vec<TensorPart>,
    json: Vec<(String, serde_json::Value)>,
}

impl CheckpointContents {
    /// An empty checkpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the tensor file `NAME.safetensors`.
    pub fn tensors(
        mut self,
        name: impl Into<String>,
        tensors: HashMap<String, Tensor>,
        metadata: Option<HashMap<String, String>>,
    ) -> Self {
        self.tensors.push((name.into(), tensors, metadata));
        self
    }

    /// Adds a model's variables as the tensor file `NAME.safetensors`.
    pub fn vars(self, name: impl Into<String>, vars: &candle_nn::VarMap) -> Self {
        self.tensors(name, crate::params::snapshot(vars), None)
    }

    /// Adds an optimiser's state (with its step in the header) as the tensor
    /// file `NAME.safetensors`.
    pub fn optimizer(self, name: impl Into<String>, opt: &crate::Adam) -> Self {
        self.tensors(name, opt.state_tensors(), Some(opt.metadata()))
    }

    /// Adds the JSON file `NAME.json`.
    pub fn json<T: Serialize + ?Sized>(
        mut self,
        name: impl Into<String>,
        value: &T,
    ) -> Result<Self> {
        let name = name.into();
        let v = serde_json::to_value(value).map_err(|source| agesynth_core::Error::Json {
            path: PathBuf::from(format!("{name}.json")),
            source,
        })?;
        self.json.push((name, v));
        Ok(self)
    }
}

/// `true` when every value of `t` is finite (0·x is 0 for finite x and NaN
/// for NaN and ±inf, so the sum is 0 exactly when all are finite).
pub fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() {
        return Ok(true);
    }
    let s = (t * 0.0)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(s == 0.0)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(agesynth_core::Error::InvalidInput(format!(
            "checkpoint part name `{name}`: use letters, digits, - and _"
        ))
        .into())
    }
}

/// Opens and syncs a folder so that renames and creations in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    let f = fs::File::open(dir).map_err(|e| agesynth_core::Error::io("opening folder", dir, e))?;
    f.sync_all()
        .map_err(|e| agesynth_core::Error::io("syncing folder", dir, e))?;
    Ok(())
}

/// Loads a safetensors file with its header metadata.
pub fn load_tensors_with_metadata(
    path: &Path,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let tensors = io::load_tensors(path, &Device::Cpu)?;
    let bytes = io::read_limited(
        path,
        agesynth_core::budget::MemoryBudget::from_env()?.limit(),
        "a weights file (the memory limit)",
    )?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|source| {
        agesynth_core::Error::Safetensors {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// The lock file of a run folder's writer (it holds the writer's process id).
pub const LOCK_FILE: &str = "lock";

/// The manifest of a checkpoint: every file's size and SHA-256, checked by
/// [`Checkpoint::verify`].
pub const MANIFEST: &str = "manifest.json";

/// The writer's lock of a run folder: an advisory lock on [`LOCK_FILE`] (held
/// until drop, released by the system when the process dies, even by
/// SIGKILL) and the holder's process id inside it.
#[derive(Debug)]
struct RunLock {
    path: PathBuf,
    file: fs::File,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Remove the file while still holding its lock (a writer waiting on
        // this file then sees it replaced and retries on the new one).
        if same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
        let _ = self.file.unlock();
    }
}

/// Whether the open `file` is the one at `path` now.
fn same_file(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

fn read_pid(file: &mut fs::File) -> Option<u32> {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl RunLock {
    /// Takes the lock of `root`'s writer; returns it and the process id of a
    /// stale lock taken over (a writer that died without releasing it).
    fn acquire(root: &Path) -> Result<(RunLock, Option<u32>)> {
        use std::io::{Seek, Write};
        let path = root.join(LOCK_FILE);
        for _ in 0..100 {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| agesynth_core::Error::io("opening the lock file", &path, e))?;
            let previous = read_pid(&mut file);
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(TrainError::Locked {
                        path,
                        pid: previous,
                    })
                }
                Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
                    // No advisory locks here (some network file systems):
                    // the process id alone tells a live writer from a dead one.
                    if let Some(pid) = previous.filter(|p| agesynth_core::process::pid_alive(*p)) {
                        if pid != std::process::id() {
                            return Err(TrainError::Locked {
                                path,
                                pid: Some(pid),
                            });
                        }
                    }
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(agesynth_core::Error::io("locking", &path, e).into())
                }
            }
            // The holder may have removed the file between our open and our
            // lock: then we locked a file nobody else will look at. Retry.
            if !same_file(&file, &path) {
                let _ = file.unlock();
                continue;
            }
            let write = (|| {
                file.set_len(0)?;
                file.seek(std::io::SeekFrom::Start(0))?;
                writeln!(file, "{}", std::process::id())?;
                file.sync_all()
            })();
            write.map_err(|e| agesynth_core::Error::io("writing", &path, e))?;
            let stale = previous.filter(|p| *p != std::process::id());
            return Ok((RunLock { path, file }, stale));
        }
        Err(TrainError::Locked { path, pid: None })
    }
}

/// What opening a run folder as its writer found and cleaned.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// The process id of a stale lock that was taken over (its writer died
    /// without releasing it).
    pub stale_lock: Option<u32>,
    /// Leftovers removed: temporary and half-pruned checkpoint folders,
    /// incomplete step folders, temporary files of interrupted writes.
    pub removed: Vec<PathBuf>,
}

/// A checkpoint found broken, and why.
#[derive(Clone, Debug)]
pub struct BrokenCheckpoint {
    /// Its folder.
    pub dir: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for BrokenCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.dir.display(), self.reason)
    }
}

/// What [`RunDir::find_latest`] found: the newest intact checkpoint and the
/// newer ones skipped as broken.
#[derive(Clone, Debug, Default)]
pub struct LatestReport {
    /// The newest checkpoint that passed [`Checkpoint::verify`].
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that failed it, newest first.
    pub broken: Vec<BrokenCheckpoint>,
}

/// A run folder.
///
/// It has one writer: [`RunDir::open`] takes the folder's lock (a
/// [`LOCK_FILE`] holding the writer's process id), refuses a folder a live
/// process holds, takes over a stale lock, and removes what interrupted
/// writers left behind. Readers ([`RunDir::open_read_only`], and
/// [`load_model`]) take no lock and never create or delete anything.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
    lock: Option<Arc<RunLock>>,
    report: OpenReport,
}

impl RunDir {
    /// Opens (creating it if needed) the run folder `root` as its writer:
    /// takes its lock ([`TrainError::Locked`] when a live process holds it)
    /// and removes the leftovers of interrupted writers (see
    /// [`RunDir::open_report`]). The lock is held until the last clone of
    /// the returned value is dropped.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| agesynth_core::Error::io("creating folder", &root, e))?;
        let (lock, stale_lock) = RunLock::acquire(&root)?;
        let ck = root.join("checkpoints");
        fs::create_dir_all(&ck).map_err(|e| agesynth_core::Error::io("creating folder", &ck, e))?;
        let mut run = RunDir {
            root,
            lock: Some(Arc::new(lock)),
            report: OpenReport {
                stale_lock,
                removed: Vec::new(),
            },
        };
        run.report.removed = run.clean_leftovers()?;
        Ok(run)
    }

    /// Opens the run folder `root` for reading: no lock, nothing created or
    /// deleted. A missing folder is an error naming it.
    pub fn open_read_only(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if !root.is_dir() {
            return Err(TrainError::checkpoint(&root, "is not a folder"));
        }
        Ok(RunDir {
            root,
            lock: None,
            report: OpenReport::default(),
        })
    }

    /// Whether this value holds the writer's lock.
    pub fn is_writer(&self) -> bool {
        self.lock.is_some()
    }

    /// What [`RunDir::open`] found: a stale lock taken over, leftovers
    /// removed (empty for a reader).
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    fn require_writer(&self, what: &str) -> Result<()> {
        if self.is_writer() {
            Ok(())
        } else {
            Err(TrainError::checkpoint(
                &self.root,
                format!("was opened read-only: cannot {what}"),
            ))
        }
    }

    /// Removes, under the writer's lock, what interrupted writers left:
    /// `.tmp-*` (a checkpoint being written) and `.trash-*` (one being
    /// pruned) folders, step folders without `meta.json`, and the temporary
    /// files of interrupted atomic writes in the run folder, `samples/` and
    /// `checkpoints/`. Returns what was removed.
    fn clean_leftovers(&self) -> Result<Vec<PathBuf>> {
        self.require_writer("clean leftovers")?;
        let mut removed = Vec::new();
        let ck = self.checkpoints_dir();
        if let Ok(entries) = fs::read_dir(&ck) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                let leftover = is_dir
                    && (name.starts_with(".tmp-")
                        || name.starts_with(".trash-")
                        || (parse_step_dir(&name).is_some() && !path.join("meta.json").is_file()));
                if leftover {
                    fs::remove_dir_all(&path)
                        .map_err(|err| agesynth_core::Error::io("removing leftover", &path, err))?;
                    removed.push(path);
                }
            }
        }
        for dir in [self.root.clone(), self.samples_dir(), ck] {
            removed.extend(io::clean_stale_temporaries(&dir, true)?);
        }
        removed.sort();
        Ok(removed)
    }

    /// The run folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `log.jsonl`.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("log.jsonl")
    }

    /// `samples/`.
    pub fn samples_dir(&self) -> PathBuf {
        self.root.join("samples")
    }

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// Writes `config.json` atomically (the writer only).
    pub fn save_config<T: Serialize + ?Sized>(&self, config: &T) -> Result<()> {
        self.require_writer("save its config")?;
        Ok(io::save_json(self.config_path(), config)?)
    }

    /// Reads `config.json`.
    pub fn load_config<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(io::load_json(self.config_path())?)
    }

    /// The steps of the complete checkpoints (step folders holding
    /// `meta.json`), oldest first; none when there is no `checkpoints/`.
    pub fn checkpoint_steps(&self) -> Result<Vec<u64>> {
        let dir = self.checkpoints_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(agesynth_core::Error::io("listing", &dir, e).into()),
        };
        let mut steps: Vec<u64> = entries
            .flatten()
            .filter_map(|e| parse_step_dir(&e.file_name().to_string_lossy()))
            .filter(|s| dir.join(step_dir_name(*s)).join("meta.json").is_file())
            .collect();
        steps.sort_unstable();
        steps.dedup();
        Ok(steps)
    }

    /// The complete checkpoints, newest first, unverified (one pruned by a
    /// writer while a reader lists them is left out).
    pub fn checkpoints_newest_first(&self) -> Result<Vec<Checkpoint>> {
        Ok(self
            .checkpoint_steps()?
            .into_iter()
            .rev()
            .filter_map(|s| Checkpoint::open(self.checkpoints_dir().join(step_dir_name(s)), s).ok())
            .collect())
    }

    /// The newest intact checkpoint (see [`RunDir::find_latest`]); `None`
    /// for a new run or one whose every checkpoint is broken.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        Ok(self.find_latest()?.checkpoint)
    }

    /// The newest checkpoint that passes [`Checkpoint::verify`], and the
    /// newer ones that did not (a truncated or damaged file, a folder
    /// deleted by hand), so that the caller can warn about each. The `latest`
    /// pointer is only a hint for other tools: a complete step folder is
    /// written whole before it is renamed into place, so the highest intact
    /// one is the newest state.
    pub fn find_latest(&self) -> Result<LatestReport> {
        let mut report = LatestReport::default();
        for ck in self.checkpoints_newest_first()? {
            match ck.verify() {
                Ok(()) => {
                    report.checkpoint = Some(ck);
                    break;
                }
                Err(e) => report.broken.push(BrokenCheckpoint {
                    dir: ck.dir().to_path_buf(),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(report)
    }

    /// Writes the checkpoint of `step` atomically, points `latest` at it and
    /// deletes all but the newest `keep` checkpoints (`keep` ≥ 1). The
    /// writer only.
    ///
    /// Every floating-point tensor is checked first: a NaN or infinite value
    /// refuses the save with [`TrainError::NonFiniteWeights`], leaving the
    /// previous checkpoint and `latest` untouched. If an intact checkpoint of
    /// this step exists already (a save on Ctrl-C right after a periodic
    /// one), it is kept and reused: the state of a step is the same; a broken
    /// one is replaced.
    pub fn save_checkpoint(
        &self,
        step: u64,
        contents: &CheckpointContents,
        meta: &serde_json::Value,
        keep: usize,
    ) -> Result<Checkpoint> {
        self.require_writer("save a checkpoint")?;
        let ck = self.checkpoints_dir();
        let name = step_dir_name(step);
        let target = ck.join(&name);
        if target.join("meta.json").is_file() {
            let existing = Checkpoint::open(&target, step)?;
            if existing.verify().is_ok() {
                self.point_latest(&name)?;
                return Ok(existing);
            }
        }
        let tmp = ck.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| agesynth_core::Error::io("removing", &tmp, e))?;
        }
        let result = self.write_into(&tmp, step, contents, meta);
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if target.exists() {
            // A broken folder of this step (a damaged file, or an older
            // writer's crash): move it out of the way, then delete it.
            self.discard(&target)?;
        }
        fs::rename(&tmp, &target).map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            agesynth_core::Error::io("renaming checkpoint folder onto", &target, e)
        })?;
        sync_dir(&ck)?;
        self.point_latest(&name)?;
        self.prune(keep.max(1), step)?;
        Checkpoint::open(target, step)
    }

    fn write_into(
        &self,
        tmp: &Path,
        step: u64,
        contents: &CheckpointContents,
        meta: &serde_json::Value,
    ) -> Result<()> {
        fs::create_dir_all(tmp).map_err(|e| agesynth_core::Error::io("creating folder", tmp, e))?;
        let mut files = Vec::new();
        for (part, tensors, metadata) in &contents.tensors {
            check_name(part)?;
            let mut names: Vec<&String> = tensors.keys().collect();
            names.sort();
            for n in names {
                if !all_finite(&tensors[n])? {
                    return Err(TrainError::NonFiniteWeights {
                        step,
                        part: part.clone(),
                        tensor: n.clone(),
                    });
                }
            }
            let file = format!("{part}.safetensors");
            io::save_tensors(tmp.join(&file), tensors, metadata.clone())?;
            files.push(file);
        }
        for (part, value) in &contents.json {
            check_name(part)?;
            let file = format!("{part}.json");
            io::save_json(tmp.join(&file), value)?;
            files.push(file);
        }
        // The manifest: what verify() checks on load.
        let mut manifest = serde_json::Map::new();
        for file in files {
            let (bytes, sha256) = file_digest(&tmp.join(&file))?;
            manifest.insert(
                file,
                serde_json::json!({ "bytes": bytes, "sha256": sha256 }),
            );
        }
        io::save_json(
            tmp.join(MANIFEST),
            &serde_json::json!({ "files": manifest }),
        )?;
        // meta.json last: its presence marks a complete checkpoint.
        io::save_json(tmp.join("meta.json"), meta)?;
        sync_dir(tmp)
    }

    fn point_latest(&self, name: &str) -> Result<()> {
        io::atomic_write_bytes(
            self.checkpoints_dir().join(LATEST),
            format!("{name}\n").as_bytes(),
        )?;
        sync_dir(&self.checkpoints_dir())
    }

    /// Deletes a checkpoint folder so that no crash leaves half of it: it
    /// is first renamed to a hidden `.trash-*` folder (atomic), then
    /// removed; a `.trash-*` folder left by a crash is removed by the next
    /// writer's [`RunDir::open`].
    fn discard(&self, dir: &Path) -> Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let trash = self
            .checkpoints_dir()
            .join(format!(".trash-{name}-{}", std::process::id()));
        if trash.exists() {
            fs::remove_dir_all(&trash)
                .map_err(|e| agesynth_core::Error::io("removing", &trash, e))?;
        }
        fs::rename(dir, &trash)
            .map_err(|e| agesynth_core::Error::io("moving aside for deletion", dir, e))?;
        sync_dir(&self.checkpoints_dir())?;
        fs::remove_dir_all(&trash).map_err(|e| agesynth_core::Error::io("removing", &trash, e))?;
        Ok(())
    }

    fn prune(&self, keep: usize, current: u64) -> Result<()> {
        let steps = self.checkpoint_steps()?;
        if steps.len() <= keep {
            return Ok(());
        }
        for &s in &steps[..steps.len() - keep] {
            if s == current {
                continue;
            }
            self.discard(&self.checkpoints_dir().join(step_dir_name(s)))?;
        }
        Ok(())
    }
}

/// The size and SHA-256 (hex) of a file.
fn file_digest(path: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| agesynth_core::Error::io("reading", path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| agesynth_core::Error::io("reading", path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}

/// One complete checkpoint folder.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    step: u64,
}

impl Checkpoint {
    /// Opens the checkpoint folder `dir` of `step`; it must hold `meta.json`.
    pub fn open(dir: impl Into<PathBuf>, step: u64) -> Result<Self> {
        let dir = dir.into();
        if !dir.join("meta.json").is_file() {
            return Err(TrainError::checkpoint(
                &dir,
                "is not a complete checkpoint (no meta.json)",
            ));
        }
        Ok(Checkpoint { dir, step })
    }

    /// Checks that the checkpoint is whole: `meta.json` parses, and every
    /// file its [`MANIFEST`] lists has the recorded size and SHA-256
    /// (checkpoints written before manifests existed: every
    /// `.safetensors` file parses and every `.json` file too). The error
    /// names the first bad file.
    pub fn verify(&self) -> Result<()> {
        let _: serde_json::Value = self.load_json("meta")?;
        let manifest_path = self.dir.join(MANIFEST);
        if manifest_path.is_file() {
            let manifest: serde_json::Value = io::load_json(&manifest_path)?;
            let files = manifest
                .get("files")
                .and_then(|f| f.as_object())
                .ok_or_else(|| TrainError::checkpoint(&manifest_path, "has no `files` map"))?;
            for (file, want) in files {
                if file.contains(['/', '\\']) || file.starts_with('.') {
                    return Err(TrainError::checkpoint(
                        &manifest_path,
                        format!("names `{file}`, not a file of the checkpoint"),
                    ));
                }
                let path = self.dir.join(file);
                let (bytes, sha) = file_digest(&path)?;
                let want_bytes = want.get("bytes").and_then(|b| b.as_u64());
                let want_sha = want.get("sha256").and_then(|s| s.as_str());
                if want_bytes != Some(bytes) {
                    return Err(TrainError::checkpoint(
                        &path,
                        format!(
                            "has {bytes} bytes, the manifest says {} (truncated or damaged)",
                            want_bytes.map_or("?".to_string(), |b| b.to_string())
                        ),
                    ));
                }
                if want_sha != Some(sha.as_str()) {
                    return Err(TrainError::checkpoint(
                        &path,
                        "does not match its SHA-256 in the manifest (damaged)",
                    ));
                }
            }
            return Ok(());
        }
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| agesynth_core::Error::io("listing", &self.dir, e))?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            match p.extension().and_then(|x| x.to_str()) {
                Some("safetensors") => {
                    let bytes = io::read_limited(
                        &p,
                        agesynth_core::budget::MemoryBudget::from_env()?.limit(),
                        "a checkpoint file",
                    )?;
                    safetensors::SafeTensors::deserialize(&bytes).map_err(|source| {
                        agesynth_core::Error::Safetensors {
                            path: p.clone(),
                            source,
                        }
                    })?;
                }
                Some("json") => {
                    let _: serde_json::Value = io::load_json(&p)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The step it was saved at.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The path of tensor part `name`.
    pub fn tensors_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.safetensors"))
    }

    /// Loads tensor part `name` onto the CPU with its header metadata.
    pub fn load_tensors(
        &self,
        name: &str,
    ) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
        load_tensors_with_metadata(&self.tensors_path(name))
    }

    /// Loads tensor part `name` into `vars` (names and shapes checked; an
    /// error names the file).
    pub fn restore_vars(&self, name: &str, vars: &candle_nn::VarMap) -> Result<()> {
        let (t, _) = self.load_tensors(name)?;
        crate::params::restore(vars, t, &self.tensors_path(name))
    }

    /// Loads the optimiser state of tensor part `name` into `opt`.
    pub fn restore_optimizer(&self, name: &str, opt: &mut crate::Adam) -> Result<()> {
        let (t, meta) = self.load_tensors(name)?;
        opt.load_state(t, &meta, &self.tensors_path(name))
    }

    /// Reads JSON part `name`.
    pub fn load_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        Ok(io::load_json(self.dir.join(format!("{name}.json")))?)
    }

    /// Reads `meta.json`.
    pub fn meta<T: DeserializeOwned>(&self) -> Result<T> {
        self.load_json("meta")
    }
}

/// What kind of model a config sidecar describes, told by fields only that
/// kind has (for an error that says which model was given where another was
/// expected).
pub fn describe_config(value: &serde_json::Value) -> Option<&'static str> {
    let has = |k: &str| value.get(k).is_some();
    if has("g_res_blocks") || has("bottleneck_age") {
        Some("a FaceGAN generator (FaceGanConfig)")
    } else if has("mapping_layers") || has("z_dim") {
        Some("a cStyleGAN generator (CStyleGanConfig)")
    } else if has("head") && has("channels") {
        Some("a critic (CriticConfig)")
    } else {
        None
    }
}

/// Writes a warning line to stderr; never panics (a closed pipe is no
/// reason to stop).
pub fn warn(line: impl AsRef<str>) {
    agesynth_core::console::err(format_args!("warning: {}", line.as_ref()), true);
}

/// Loads a generator shipped or checkpointed by a trainer: `path` is a
/// weights file with its config sidecar (`PATH.json`), a folder holding one
/// of `names` (`NAME.safetensors`, first found wins), or a run folder (its
/// newest intact checkpoint's first `NAME` present; a broken newer one is
/// skipped with a warning naming it). `build` makes the model from the
/// sidecar's config and a `VarBuilder` over a fresh `VarMap`, which is then
/// filled from the file (names, shapes, float types and finite values
/// checked). `what` names the config type in errors; a sidecar of another
/// kind of model is named as such.
///
/// A reader: nothing is created, deleted or locked in a run folder, so it is
/// safe while a trainer writes to it.
pub fn load_model<C: DeserializeOwned, M>(
    path: &Path,
    names: &[&str],
    what: &str,
    device: &Device,
    build: impl FnOnce(&C, candle_nn::VarBuilder) -> agesynth_core::Result<M>,
) -> Result<(M, candle_nn::VarMap)> {
    let in_folder = |dir: &Path| {
        names
            .iter()
            .map(|n| dir.join(format!("{n}.safetensors")))
            .find(|p| p.is_file())
    };
    let wanted = || format!("{}.safetensors", names.join(".safetensors / "));
    if !path.exists() {
        return Err(TrainError::checkpoint(
            path,
            format!("does not exist (expected a weights file with its .json sidecar, a checkpoint folder or a run folder holding {})", wanted()),
        ));
    }
    let weights = if path.is_dir() {
        match in_folder(path) {
            Some(w) => w,
            None => {
                let run = RunDir::open_read_only(path)?;
                let found = run.find_latest()?;
                for b in &found.broken {
                    warn(format!("skipping broken checkpoint {b}"));
                }
                let ck = found.checkpoint.ok_or_else(|| {
                    TrainError::checkpoint(
                        path,
                        if found.broken.is_empty() {
                            format!("is a folder without checkpoints or {}", wanted())
                        } else {
                            format!(
                                "is a run folder whose {} checkpoint(s) are all broken (newest: {})",
                                found.broken.len(),
                                found.broken[0]
                            )
                        },
                    )
                })?;
                if !found.broken.is_empty() {
                    warn(format!(
                        "using the previous intact checkpoint {}",
                        ck.dir().display()
                    ));
                }
                in_folder(ck.dir()).ok_or_else(|| {
                    TrainError::checkpoint(ck.dir(), format!("holds none of {}", wanted()))
                })?
            }
        }
    } else {
        path.to_path_buf()
    };
    let sidecar = io::sidecar_path(&weights);
    if !sidecar.is_file() {
        return Err(TrainError::checkpoint(
            &weights,
            format!(
                "has no config sidecar {} (the model's {what})",
                sidecar.display()
            ),
        ));
    }
    let value: serde_json::Value = io::load_json(&sidecar)?;
    let cfg: C = serde_json::from_value(value.clone()).map_err(|source| {
        let expected = match what {
            "FaceGanConfig" => "a FaceGAN generator",
            "CStyleGanConfig" => "a cStyleGAN generator",
            "CriticConfig" => "a critic",
            _ => "this kind of model",
        };
        match describe_config(&value) {
            Some(kind) if !kind.contains(&format!("({what})")) => TrainError::checkpoint(
                &sidecar,
                format!("describes {kind}, not {expected} ({what}): pass {expected} here"),
            ),
            _ => TrainError::checkpoint(&sidecar, format!("is not a valid {what}: {source}")),
        }
    })?;
    // The model's variables come straight from the file: a variable the
    // sidecar implies but the file lacks is an error, not an allocation, so
    // a damaged sidecar (channels of 10^6) cannot make the model huge.
    let tensors: SharedTensors = Arc::new(std::sync::Mutex::new(io::load_tensors(
        &weights,
        &Device::Cpu,
    )?));
    let vars = candle_nn::VarMap::new();
    let backend = FileBackend {
        path: weights.clone(),
        tensors: tensors.clone(),
        vars: vars.clone(),
    };
    let vb = candle_nn::VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
    let model = build(&cfg, vb).map_err(|e| {
        TrainError::checkpoint(
            &weights,
            format!(
                "and its sidecar {} do not make a model: {e}",
                sidecar.display()
            ),
        )
    })?;
    let left = tensors
        .lock()
        .map(|t| t.keys().min().cloned())
        .unwrap_or(None);
    if let Some(extra) = left {
        return Err(agesynth_core::Error::Dataset {
            path: weights,
            reason: format!("tensor `{extra}` belongs to no variable of this model"),
        }
        .into());
    }
    Ok((model, vars))
}

type SharedTensors = Arc<std::sync::Mutex<HashMap<String, Tensor>>>;

/// A `VarBuilder` backend over the tensors of one weights file: each
/// variable a model asks for must be in the file with that shape and a float
/// type, and becomes a variable of `vars`; nothing is allocated for a
/// variable the file lacks.
struct FileBackend {
    path: PathBuf,
    tensors: SharedTensors,
    vars: candle_nn::VarMap,
}

impl FileBackend {
    fn take(
        &self,
        name: &str,
        shape: Option<&candle_core::Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let poisoned = |_| candle_core::Error::Msg("a lock is poisoned".into());
        let mut vars = self.vars.data().lock().map_err(poisoned)?;
        if let Some(v) = vars.get(name) {
            if let Some(s) = shape {
                if v.shape() != s {
                    candle_core::bail!(
                        "{}: tensor `{name}` asked for twice with shapes {s:?} and {:?}",
                        self.path.display(),
                        v.shape()
                    );
                }
            }
            return Ok(v.as_tensor().clone());
        }
        let t = self
            .tensors
            .lock()
            .map_err(|_| candle_core::Error::Msg("a lock is poisoned".into()))?
            .remove(name);
        let Some(t) = t else {
            candle_core::bail!(
                "weights file {} has no tensor `{name}`{}",
                self.path.display(),
                shape
                    .map(|s| format!(" of shape {s:?}"))
                    .unwrap_or_default()
            );
        };
        if let Some(s) = shape {
            if t.shape() != s {
                candle_core::bail!(
                    "weights file {}: tensor `{name}` has shape {:?}, expected {s:?}",
                    self.path.display(),
                    t.dims()
                );
            }
        }
        if !t.dtype().is_float() {
            candle_core::bail!(
                "weights file {}: tensor `{name}` is {:?}, not a floating-point type",
                self.path.display(),
                t.dtype()
            );
        }
        let var = candle_core::Var::from_tensor(&t.to_dtype(dtype)?.to_device(dev)?)?;
        let out = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(out)
    }
}

impl candle_nn::var_builder::SimpleBackend for FileBackend {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.take(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.take(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        let in_vars = self
            .vars
            .data()
            .lock()
            .map(|v| v.contains_key(name))
            .unwrap_or(false);
        in_vars
            || self
                .tensors
                .lock()
                .map(|t| t.contains_key(name))
                .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(x: f32) -> CheckpointContents {
        let t = Tensor::new(&[x, x + 1.0], &Device::Cpu).unwrap();
        CheckpointContents::new()
            .tensors("model", HashMap::from([("w".to_string(), t)]), None)
            .json("data", &serde_json::json!({"epoch": 1}))
            .unwrap()
    }

    fn w_of(ck: &Checkpoint) -> Vec<f32> {
        ck.load_tensors("model").unwrap().0["w"]
            .to_vec1::<f32>()
            .unwrap()
    }

    #[test]
    fn keeps_last_n_and_points_latest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path().join("run")).unwrap();
        assert!(run.latest().unwrap().is_none());
        for step in [10, 20, 30, 40] {
            run.save_checkpoint(
                step,
                &contents(step as f32),
                &serde_json::json!({"step": step}),
                2,
            )
            .unwrap();
        }
        assert_eq!(run.checkpoint_steps().unwrap(), vec![30, 40]);
        let latest = run.latest().unwrap().unwrap();
        assert_eq!(latest.step(), 40);
        assert_eq!(w_of(&latest), vec![40.0, 41.0]);
        let meta: serde_json::Value = latest.meta().unwrap();
        assert_eq!(meta["step"], 40);
        let data: serde_json::Value = latest.load_json("data").unwrap();
        assert_eq!(data["epoch"], 1);
    }

    /// A save that fails half-way (the second tensor file holds a NaN, found
    /// after the first file was written) leaves the previous checkpoint,
    /// `latest` and no temporary folder behind.
    #[test]
    fn failed_save_keeps_previous_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        run.save_checkpoint(5, &contents(5.0), &serde_json::json!({}), 3)
            .unwrap();
        let bad = contents(6.0).tensors(
            "optim",
            HashMap::from([(
                "m".to_string(),
                Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu).unwrap(),
            )]),
            None,
        );
        let err = run
            .save_checkpoint(6, &bad, &serde_json::json!({}), 3)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, TrainError::NonFiniteWeights { step: 6, .. }) && msg.contains("optim"),
            "{msg}"
        );
        assert_eq!(run.checkpoint_steps().unwrap(), vec![5]);
        let latest = run.latest().unwrap().unwrap();
        assert_eq!((latest.step(), w_of(&latest)), (5, vec![5.0, 6.0]));
        let names: Vec<String> = fs::read_dir(run.checkpoints_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");

        // Infinite weights are refused too.
        let inf = CheckpointContents::new().tensors(
            "model",
            HashMap::from([(
                "w".to_string(),
                Tensor::new(&[f32::INFINITY], &Device::Cpu).unwrap(),
            )]),
            None,
        );
        assert!(run
            .save_checkpoint(7, &inf, &serde_json::json!({}), 3)
            .is_err());
        assert_eq!(run.latest().unwrap().unwrap().step(), 5);
    }

    /// A crash mid-save leaves a temporary folder, which opening the run
    /// removes; a step folder without meta.json is not a checkpoint.
    #[test]
    fn stale_temporaries_are_cleaned_and_incomplete_folders_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        run.save_checkpoint(1, &contents(1.0), &serde_json::json!({}), 3)
            .unwrap();
        fs::create_dir_all(run.checkpoints_dir().join(".tmp-step-000002-1")).unwrap();
        fs::create_dir_all(run.checkpoints_dir().join("step-000003")).unwrap();
        fs::remove_file(run.checkpoints_dir().join(LATEST)).unwrap();
        drop(run);
        let run = RunDir::open(dir.path()).unwrap();
        assert!(!run.checkpoints_dir().join(".tmp-step-000002-1").exists());
        assert_eq!(run.latest().unwrap().unwrap().step(), 1);
        // Saving step 3 works whatever was there.
        run.save_checkpoint(3, &contents(3.0), &serde_json::json!({}), 3)
            .unwrap();
        assert_eq!(w_of(&run.latest().unwrap().unwrap()), vec![3.0, 4.0]);
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Issue 17, item 1: readers never delete or create anything in a run
    /// folder — not the checkpoint a trainer is writing (`.tmp-*`), not an
    /// empty `checkpoints/` in a folder opened as a model.
    #[test]
    fn readers_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = RunDir::open(dir.path().join("run")).unwrap();
        writer
            .save_checkpoint(5, &contents(5.0), &serde_json::json!({"step": 5}), 3)
            .unwrap();
        // A save in progress.
        let tmp = writer.checkpoints_dir().join(".tmp-step-000010-999999");
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("model.safetensors"), b"half").unwrap();
        let before = names_in(&writer.checkpoints_dir());
        for _ in 0..4 {
            let reader = RunDir::open_read_only(writer.root()).unwrap();
            assert!(!reader.is_writer());
            assert_eq!(reader.latest().unwrap().unwrap().step(), 5);
            assert!(reader
                .save_checkpoint(6, &contents(6.0), &serde_json::json!({}), 3)
                .is_err());
        }
        assert_eq!(names_in(&writer.checkpoints_dir()), before);
        assert!(tmp.join("model.safetensors").is_file());
        // A plain folder opened as a model gains no checkpoints/.
        let plain = dir.path().join("plain");
        fs::create_dir_all(&plain).unwrap();
        let err =
            load_model::<serde_json::Value, ()>(&plain, &["g"], "GConfig", &Device::Cpu, |_, _| {
                Ok(())
            })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("without checkpoints"), "{err}");
        assert!(names_in(&plain).is_empty());
        // A missing path says so, not "no config sidecar".
        let err = load_model::<serde_json::Value, ()>(
            &dir.path().join("nope"),
            &["g"],
            "GConfig",
            &Device::Cpu,
            |_, _| Ok(()),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    /// Issue 17, item 1: one writer per run folder; the lock holds the
    /// writer's PID, is released on drop, and a stale one (its process
    /// gone) is taken over.
    #[test]
    fn one_writer_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunDir::open(dir.path()).unwrap();
        let lock = dir.path().join(LOCK_FILE);
        assert_eq!(
            fs::read_to_string(&lock).unwrap().trim(),
            std::process::id().to_string()
        );
        let err = RunDir::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, TrainError::Locked { pid: Some(p), .. } if p == std::process::id()),
            "{err}"
        );
        assert!(err.to_string().contains("in use"), "{err}");
        // A clone shares the lock; dropping every clone releases it.
        let clone = first.clone();
        drop(first);
        assert!(RunDir::open(dir.path()).is_err());
        drop(clone);
        assert!(!lock.exists());
        let second = RunDir::open(dir.path()).unwrap();
        assert_eq!(second.open_report().stale_lock, None);
        drop(second);
        // A lock file left by a killed writer (nobody holds its lock).
        fs::write(&lock, "4000000\n").unwrap();
        let third = RunDir::open(dir.path()).unwrap();
        assert_eq!(third.open_report().stale_lock, Some(4_000_000));
    }

    /// Issue 17, item 6: a kill while pruning leaves a `.trash-*` folder or
    /// a step folder without meta.json; temporary files of killed atomic
    /// writes stay too. The next writer removes all of them.
    #[test]
    fn the_next_writer_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        run.save_checkpoint(1, &contents(1.0), &serde_json::json!({}), 3)
            .unwrap();
        let ck = run.checkpoints_dir();
        fs::create_dir_all(ck.join(".trash-step-000000-77")).unwrap();
        fs::create_dir_all(ck.join("step-000002")).unwrap();
        fs::write(ck.join("step-000002/model.safetensors"), b"x").unwrap();
        fs::write(dir.path().join(".log.jsonl.123.tmp"), b"x").unwrap();
        fs::create_dir_all(run.samples_dir()).unwrap();
        fs::write(run.samples_dir().join(".step-000001.png.55.tmp"), b"x").unwrap();
        drop(run);
        let run = RunDir::open(dir.path()).unwrap();
        assert_eq!(
            run.open_report().removed.len(),
            4,
            "{:?}",
            run.open_report()
        );
        assert_eq!(names_in(&ck), vec!["latest", "step-000001"]);
        assert!(names_in(dir.path()).iter().all(|n| !n.ends_with(".tmp")));
        assert!(names_in(&run.samples_dir()).is_empty());
        // Pruning goes through a hidden folder and leaves nothing else.
        for s in 2..=5 {
            run.save_checkpoint(s, &contents(s as f32), &serde_json::json!({}), 2)
                .unwrap();
        }
        assert_eq!(names_in(&ck), vec!["latest", "step-000004", "step-000005"]);
    }

    /// Issue 17, item 5: a truncated or damaged newest checkpoint (or one
    /// deleted by hand) falls back to the previous intact one, which a
    /// reader also loads, with the broken one named.
    #[test]
    fn a_broken_newest_checkpoint_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open(dir.path()).unwrap();
        for s in [1, 2, 3] {
            run.save_checkpoint(s, &contents(s as f32), &serde_json::json!({"step": s}), 5)
                .unwrap();
        }
        let newest = run.checkpoints_dir().join(step_dir_name(3));
        let model = newest.join("model.safetensors");
        let bytes = fs::read(&model).unwrap();
        fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let found = run.find_latest().unwrap();
        assert_eq!(found.checkpoint.as_ref().unwrap().step(), 2);
        assert_eq!(found.broken.len(), 1);
        assert!(
            found.broken[0].to_string().contains("step-000003"),
            "{}",
            found.broken[0]
        );
        assert!(
            found.broken[0].reason.contains("truncated"),
            "{}",
            found.broken[0]
        );
        // Same length, other bytes: the hash catches it.
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        fs::write(&model, &flipped).unwrap();
        assert_eq!(run.latest().unwrap().unwrap().step(), 2);
        // The folder deleted by hand: `latest` names a missing folder.
        fs::remove_dir_all(&newest).unwrap();
        assert_eq!(run.latest().unwrap().unwrap().step(), 2);
        // Saving that step again replaces a broken folder rather than
        // keeping it.
        fs::create_dir_all(&newest).unwrap();
        fs::write(newest.join("meta.json"), b"{").unwrap();
        assert_eq!(run.latest().unwrap().unwrap().step(), 2);
        run.save_checkpoint(3, &contents(3.0), &serde_json::json!({"step": 3}), 5)
            .unwrap();
        let latest = run.latest().unwrap().unwrap();
        assert_eq!((latest.step(), w_of(&latest)), (3, vec![3.0, 4.0]));
    }

    fn write_model(dir: &Path, sidecar: &serde_json::Value, w: &[f32]) -> PathBuf {
        let path = dir.join("g.safetensors");
        let t = Tensor::new(w, &Device::Cpu).unwrap();
        io::save_with_sidecar(&path, &HashMap::from([("w".to_string(), t)]), sidecar).unwrap();
        path
    }

    fn load_w(path: &Path) -> Result<Vec<f32>> {
        #[derive(serde::Deserialize)]
        struct GConfig {
            #[allow(dead_code)]
            mapping_layers: usize,
        }
        let (_, vars) = load_model(path, &["g"], "GConfig", &Device::Cpu, |_: &GConfig, vb| {
            Ok(vb.get_with_hints(2, "w", candle_nn::Init::Const(0.0))?)
        })?;
        let w = vars.data().lock().unwrap()["w"]
            .as_tensor()
            .to_vec1::<f32>()?;
        Ok(w)
    }

    /// Issue 17, item 3: NaN weights are refused at load; a sidecar of
    /// another kind of model is named as such.
    #[test]
    fn damaged_or_mismatched_models_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ok = serde_json::json!({"mapping_layers": 2});
        let p = write_model(dir.path(), &ok, &[1.0, 2.0]);
        assert_eq!(load_w(&p).unwrap(), vec![1.0, 2.0]);
        let p = write_model(dir.path(), &ok, &[1.0, f32::NAN]);
        let err = load_w(&p).unwrap_err().to_string();
        assert!(
            err.contains("NaN") && err.contains("g.safetensors"),
            "{err}"
        );
        let facegan = serde_json::json!({"g_res_blocks": 2, "preset": "cpu64"});
        let p = write_model(dir.path(), &facegan, &[1.0, 2.0]);
        let err = load_w(&p).unwrap_err().to_string();
        assert!(err.contains("describes a FaceGAN generator"), "{err}");
    }
    #[test]
    fn finiteness_check() {
        let ok = Tensor::new(&[1.0f32, -3.0, 0.0], &Device::Cpu).unwrap();
        assert!(all_finite(&ok).unwrap());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let t = Tensor::new(&[1.0f32, bad], &Device::Cpu).unwrap();
            assert!(!all_finite(&t).unwrap());
        }
    }
}
