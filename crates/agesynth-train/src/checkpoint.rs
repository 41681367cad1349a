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

pub use agesynth_core::checkpoint::{
    describe_config, load_model, load_tensors_with_metadata, step_dir_name, warn, BrokenCheckpoint,
    Checkpoint, LatestReport, LATEST, MANIFEST,
};
use agesynth_core::{checkpoint, io};
use candle_core::{DType, Tensor};
use serde::{de::DeserializeOwned, Serialize};

use crate::{Result, TrainError};

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
    pub fn optimizer(self, name: impl Into<String>, opt: &crate::Adam) -> Result<Self> {
        Ok(self.tensors(name, opt.state_tensors()?, Some(opt.metadata())))
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

/// The fields in which two configs differ, as `name saved → now` (nested
/// fields dotted), for an error that says why a checkpoint does not fit.
/// Empty when their serialized forms are equal.
pub fn config_differences<T: Serialize>(saved: &T, now: &T) -> String {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let name = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &name,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{path} {a} → {b}")),
            _ => {}
        }
    }
    let (a, b) = (serde_json::to_value(saved), serde_json::to_value(now));
    let mut out = Vec::new();
    match (a, b) {
        (Ok(a), Ok(b)) => walk("", &a, &b, &mut out),
        _ => out.push("(the configs cannot be compared)".into()),
    }
    out.join(", ")
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

/// The lock file of a run folder's writer (it holds the writer's process id).
pub const LOCK_FILE: &str = "lock";

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
                        || (checkpoint::parse_step_dir(&name).is_some()
                            && !path.join("meta.json").is_file()));
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
        Ok(checkpoint::checkpoint_steps(&self.checkpoints_dir())?)
    }

    /// The complete checkpoints, newest first, unverified (one pruned by a
    /// writer while a reader lists them is left out).
    pub fn checkpoints_newest_first(&self) -> Result<Vec<Checkpoint>> {
        Ok(checkpoint::checkpoints_newest_first(
            &self.checkpoints_dir(),
        )?)
    }

    /// The newest intact checkpoint (see [`RunDir::find_latest`]); `None`
    /// for a new run or one whose every checkpoint is broken.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        Ok(self.find_latest()?.checkpoint)
    }

    /// The newest checkpoint that passes [`Checkpoint::verify`], and the
    /// newer ones that did not ([`agesynth_core::checkpoint::find_latest`]).
    pub fn find_latest(&self) -> Result<LatestReport> {
        Ok(checkpoint::find_latest(&self.checkpoints_dir())?)
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
        Ok(Checkpoint::open(target, step)?)
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
            let (bytes, sha256) = checkpoint::file_digest(&tmp.join(&file))?;
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

/// Restoring a training state from a [`Checkpoint`]: variables and
/// optimiser state (the reader in `agesynth-core` knows neither).
pub trait CheckpointRestore {
    /// Loads tensor part `name` into `vars` (names and shapes checked; an
    /// error names the file).
    fn restore_vars(&self, name: &str, vars: &candle_nn::VarMap) -> Result<()>;
    /// Loads the optimiser state of tensor part `name` into `opt`.
    fn restore_optimizer(&self, name: &str, opt: &mut crate::Adam) -> Result<()>;
}

impl CheckpointRestore for Checkpoint {
    fn restore_vars(&self, name: &str, vars: &candle_nn::VarMap) -> Result<()> {
        let (t, _) = self.load_tensors(name)?;
        crate::params::restore(vars, t, &self.tensors_path(name))
    }

    fn restore_optimizer(&self, name: &str, opt: &mut crate::Adam) -> Result<()> {
        let (t, meta) = self.load_tensors(name)?;
        opt.load_state(t, &meta, &self.tensors_path(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
    fn config_differences_name_each_changed_field() {
        let a = serde_json::json!({"preset": "cpu64", "size": 64, "inner": {"k": 1, "same": true}});
        let b = serde_json::json!({"preset": "cpu64", "size": 128, "inner": {"k": 2, "same": true}, "new": 0});
        assert_eq!(
            config_differences(&a, &b),
            "inner.k 1 → 2, new null → 0, size 64 → 128"
        );
        assert_eq!(config_differences(&a, &a), "");
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
