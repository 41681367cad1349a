//! Run folders and atomic checkpoints.
//!
//! A run lives in one folder:
//! ```text
//! runs/NAME/
//!   config.json              what the run was started with
//!   log.jsonl                one JSON object per log interval
//!   samples/step-000500.png  sample grids
//!   checkpoints/
//!     latest                 the name of the newest complete checkpoint
//!     step-000500/           model.safetensors, optim.safetensors, ...,
//!                            data.json, meta.json
//! ```
//! A checkpoint is written into a hidden temporary folder, every file synced,
//! and the folder renamed to `step-NNNNNN` only once complete; `latest` is
//! then replaced atomically. A crash or a refused save (a NaN weight) leaves
//! the previous checkpoint and `latest` as they were. Only the newest `keep`
//! checkpoints are kept.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
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
    let bytes = fs::read(path).map_err(|e| agesynth_core::Error::io("reading", path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|source| {
        agesynth_core::Error::Safetensors {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// A run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (creating it if needed) the run folder `root`, and removes the
    /// temporary folders a crashed save may have left.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let ck = root.join("checkpoints");
        fs::create_dir_all(&ck).map_err(|e| agesynth_core::Error::io("creating folder", &ck, e))?;
        if let Ok(entries) = fs::read_dir(&ck) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(RunDir { root })
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

    /// Writes `config.json` atomically.
    pub fn save_config<T: Serialize + ?Sized>(&self, config: &T) -> Result<()> {
        Ok(io::save_json(self.config_path(), config)?)
    }

    /// Reads `config.json`.
    pub fn load_config<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(io::load_json(self.config_path())?)
    }

    /// The steps of the complete checkpoints, oldest first.
    pub fn checkpoint_steps(&self) -> Result<Vec<u64>> {
        let dir = self.checkpoints_dir();
        let mut steps: Vec<u64> = fs::read_dir(&dir)
            .map_err(|e| agesynth_core::Error::io("listing", &dir, e))?
            .flatten()
            .filter_map(|e| parse_step_dir(&e.file_name().to_string_lossy()))
            .filter(|s| dir.join(step_dir_name(*s)).join("meta.json").is_file())
            .collect();
        steps.sort_unstable();
        Ok(steps)
    }

    /// The newest checkpoint: the one `latest` names, else (if the pointer
    /// is missing) the highest complete step folder; `None` for a new run.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        let pointer = self.checkpoints_dir().join(LATEST);
        if pointer.is_file() {
            let name = fs::read_to_string(&pointer)
                .map_err(|e| agesynth_core::Error::io("reading", &pointer, e))?;
            let name = name.trim();
            let step = parse_step_dir(name).ok_or_else(|| {
                TrainError::checkpoint(&pointer, format!("names `{name}`, not a step folder"))
            })?;
            return Checkpoint::open(self.checkpoints_dir().join(name), step).map(Some);
        }
        match self.checkpoint_steps()?.last() {
            Some(&s) => {
                Checkpoint::open(self.checkpoints_dir().join(step_dir_name(s)), s).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Writes the checkpoint of `step` atomically, points `latest` at it and
    /// deletes all but the newest `keep` checkpoints (`keep` ≥ 1).
    ///
    /// Every floating-point tensor is checked first: a NaN or infinite value
    /// refuses the save with [`TrainError::NonFiniteWeights`], leaving the
    /// previous checkpoint and `latest` untouched. If a checkpoint of this
    /// step exists already (a save on Ctrl-C right after a periodic one), it
    /// is kept and reused: the state of a step is the same.
    pub fn save_checkpoint(
        &self,
        step: u64,
        contents: &CheckpointContents,
        meta: &serde_json::Value,
        keep: usize,
    ) -> Result<Checkpoint> {
        let ck = self.checkpoints_dir();
        let name = step_dir_name(step);
        let target = ck.join(&name);
        if target.join("meta.json").is_file() {
            self.point_latest(&name)?;
            return Checkpoint::open(target, step);
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
            // An incomplete folder from a crash between rename and meta: replace it.
            fs::remove_dir_all(&target)
                .map_err(|e| agesynth_core::Error::io("removing", &target, e))?;
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
            io::save_tensors(
                tmp.join(format!("{part}.safetensors")),
                tensors,
                metadata.clone(),
            )?;
        }
        for (part, value) in &contents.json {
            check_name(part)?;
            io::save_json(tmp.join(format!("{part}.json")), value)?;
        }
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

    fn prune(&self, keep: usize, current: u64) -> Result<()> {
        let steps = self.checkpoint_steps()?;
        if steps.len() <= keep {
            return Ok(());
        }
        for &s in &steps[..steps.len() - keep] {
            if s == current {
                continue;
            }
            let dir = self.checkpoints_dir().join(step_dir_name(s));
            fs::remove_dir_all(&dir).map_err(|e| agesynth_core::Error::io("removing", &dir, e))?;
        }
        Ok(())
    }
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

/// Loads a generator shipped or checkpointed by a trainer: `path` is a
/// weights file with its config sidecar (`PATH.json`), a folder holding one
/// of `names` (`NAME.safetensors`, first found wins), or a run folder (its
/// latest checkpoint's first `NAME` present). `build` makes the model from
/// the sidecar's config and a `VarBuilder` over a fresh `VarMap`, which is
/// then filled from the file (names and shapes checked). `what` names the
/// config type in errors.
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
    let weights = if path.is_dir() {
        match in_folder(path) {
            Some(w) => w,
            None => {
                let run = RunDir::open(path)?;
                let ck = run.latest()?.ok_or_else(|| {
                    TrainError::checkpoint(
                        path,
                        format!(
                            "is a folder without checkpoints or {}.safetensors",
                            names.join(".safetensors / ")
                        ),
                    )
                })?;
                in_folder(ck.dir()).ok_or_else(|| {
                    TrainError::checkpoint(
                        ck.dir(),
                        format!(
                            "holds none of {}.safetensors",
                            names.join(".safetensors / ")
                        ),
                    )
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
    let cfg: C = io::load_json(&sidecar)?;
    let vars = candle_nn::VarMap::new();
    let vb = agesynth_nn::init::seeded_var_builder(&vars, 0, DType::F32, device);
    let model = build(&cfg, vb)?;
    io::load_varmap(&vars, &weights)?;
    Ok((model, vars))
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
        let run = RunDir::open(dir.path()).unwrap();
        assert!(!run.checkpoints_dir().join(".tmp-step-000002-1").exists());
        assert_eq!(run.latest().unwrap().unwrap().step(), 1);
        // Saving step 3 replaces the incomplete folder.
        run.save_checkpoint(3, &contents(3.0), &serde_json::json!({}), 3)
            .unwrap();
        assert_eq!(w_of(&run.latest().unwrap().unwrap()), vec![3.0, 4.0]);
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
