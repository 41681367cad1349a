//! Reading checkpoints and shipped models: the read side of the run-folder
//! format that `agesynth-train` writes.
//!
//! A run folder holds `checkpoints/step-NNNNNN/` folders, each complete
//! (written whole and renamed into place) with a [`MANIFEST`] of every
//! file's size and SHA-256; [`find_latest`] finds the newest one that passes
//! [`Checkpoint::verify`]. [`load_model`] builds a model from a shipped
//! weights file with its config sidecar, a folder holding one, or a run
//! folder's newest intact checkpoint. Nothing here creates, deletes or locks
//! anything: reading is safe while a trainer writes (the writer, with its
//! lock, pruning and atomic saves, lives in `agesynth-train`).

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use candle_core::{DType, Device, Tensor};
use serde::de::DeserializeOwned;

use crate::{io, Error, Result};

/// The name of the pointer file to the newest checkpoint.
pub const LATEST: &str = "latest";

/// The folder name of the checkpoint at `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// The step of a folder named `step-NNNNNN`, if it is one.
pub fn parse_step_dir(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// The manifest of a checkpoint: every file's size and SHA-256, checked by
/// [`Checkpoint::verify`].
pub const MANIFEST: &str = "manifest.json";

/// Loads a safetensors file with its header metadata.
pub fn load_tensors_with_metadata(
    path: &Path,
) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let tensors = io::load_tensors(path, &Device::Cpu)?;
    let bytes = io::read_limited(
        path,
        crate::budget::MemoryBudget::from_env()?.limit(),
        "a weights file (the memory limit)",
    )?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
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

/// What [`find_latest`] found: the newest intact checkpoint and the
/// newer ones skipped as broken.
#[derive(Clone, Debug, Default)]
pub struct LatestReport {
    /// The newest checkpoint that passed [`Checkpoint::verify`].
    pub checkpoint: Option<Checkpoint>,
    /// Newer checkpoints that failed it, newest first.
    pub broken: Vec<BrokenCheckpoint>,
}

/// The steps of the complete checkpoints in the checkpoints folder `dir`
/// (step folders holding `meta.json`), oldest first; none when `dir` does
/// not exist.
pub fn checkpoint_steps(dir: &Path) -> Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
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

/// The complete checkpoints in the checkpoints folder `dir`, newest first,
/// unverified (one pruned by a writer while a reader lists them is left
/// out).
pub fn checkpoints_newest_first(dir: &Path) -> Result<Vec<Checkpoint>> {
    Ok(checkpoint_steps(dir)?
        .into_iter()
        .rev()
        .filter_map(|s| Checkpoint::open(dir.join(step_dir_name(s)), s).ok())
        .collect())
}

/// The newest checkpoint in the checkpoints folder `dir` that passes
/// [`Checkpoint::verify`], and the newer ones that did not (a truncated or
/// damaged file, a folder deleted by hand), so that the caller can warn
/// about each. The `latest` pointer is only a hint for other tools: a
/// complete step folder is written whole before it is renamed into place,
/// so the highest intact one is the newest state.
pub fn find_latest(dir: &Path) -> Result<LatestReport> {
    let mut report = LatestReport::default();
    for ck in checkpoints_newest_first(dir)? {
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

/// The size and SHA-256 (hex) of a file.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
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
            return Err(Error::checkpoint(
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
                .ok_or_else(|| Error::checkpoint(&manifest_path, "has no `files` map"))?;
            for (file, want) in files {
                if file.contains(['/', '\\']) || file.starts_with('.') {
                    return Err(Error::checkpoint(
                        &manifest_path,
                        format!("names `{file}`, not a file of the checkpoint"),
                    ));
                }
                let path = self.dir.join(file);
                let (bytes, sha) = file_digest(&path)?;
                let want_bytes = want.get("bytes").and_then(|b| b.as_u64());
                let want_sha = want.get("sha256").and_then(|s| s.as_str());
                if want_bytes != Some(bytes) {
                    return Err(Error::checkpoint(
                        &path,
                        format!(
                            "has {bytes} bytes, the manifest says {} (truncated or damaged)",
                            want_bytes.map_or("?".to_string(), |b| b.to_string())
                        ),
                    ));
                }
                if want_sha != Some(sha.as_str()) {
                    return Err(Error::checkpoint(
                        &path,
                        "does not match its SHA-256 in the manifest (damaged)",
                    ));
                }
            }
            return Ok(());
        }
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io("listing", &self.dir, e))?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            match p.extension().and_then(|x| x.to_str()) {
                Some("safetensors") => {
                    let bytes = io::read_limited(
                        &p,
                        crate::budget::MemoryBudget::from_env()?.limit(),
                        "a checkpoint file",
                    )?;
                    safetensors::SafeTensors::deserialize(&bytes).map_err(|source| {
                        Error::Safetensors {
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

    /// Reads JSON part `name`.
    pub fn load_json<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        io::load_json(self.dir.join(format!("{name}.json")))
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
    crate::console::err(format_args!("warning: {}", line.as_ref()), true);
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
    build: impl FnOnce(&C, candle_nn::VarBuilder) -> Result<M>,
) -> Result<(M, candle_nn::VarMap)> {
    let in_folder = |dir: &Path| {
        names
            .iter()
            .map(|n| dir.join(format!("{n}.safetensors")))
            .find(|p| p.is_file())
    };
    let wanted = || format!("{}.safetensors", names.join(".safetensors / "));
    if !path.exists() {
        return Err(Error::checkpoint(
            path,
            format!("does not exist (expected a weights file with its .json sidecar, a checkpoint folder or a run folder holding {})", wanted()),
        ));
    }
    let weights = if path.is_dir() {
        match in_folder(path) {
            Some(w) => w,
            None => {
                let found = find_latest(&path.join("checkpoints"))?;
                for b in &found.broken {
                    warn(format!("skipping broken checkpoint {b}"));
                }
                let ck = found.checkpoint.ok_or_else(|| {
                    Error::checkpoint(
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
                    Error::checkpoint(ck.dir(), format!("holds none of {}", wanted()))
                })?
            }
        }
    } else {
        path.to_path_buf()
    };
    let sidecar = io::sidecar_path(&weights);
    if !sidecar.is_file() {
        return Err(Error::checkpoint(
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
            "CStyleGanConfig" => "a cStyleGAN model",
            "CriticConfig" => "a critic",
            _ => "this kind of model",
        };
        match describe_config(&value) {
            Some(kind) if !kind.contains(&format!("({what})")) => Error::checkpoint(
                &sidecar,
                format!("describes {kind}, not {expected} ({what}): pass {expected} here"),
            ),
            _ => Error::checkpoint(&sidecar, format!("is not a valid {what}: {source}")),
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
        Error::checkpoint(
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
        return Err(Error::Dataset {
            path: weights,
            reason: format!("tensor `{extra}` belongs to no variable of this model"),
        });
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
