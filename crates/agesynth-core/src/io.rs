//! Safetensors save and load with atomic writes and a JSON sidecar.
//!
//! Every file agesynth writes goes through [`atomic_write`]: the bytes go to a
//! temporary file beside the target, are flushed to disk, and the temporary
//! file is renamed over the target. A crash or a full disk leaves the previous
//! file intact, never a half-written one.
//!
//! Weights live in `NAME.safetensors`; the configuration and metadata they
//! were made with live beside them in `NAME.json` (the *sidecar*).

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use candle_core::{safetensors::Load, DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

/// Writes a file atomically: `write` fills a temporary file in the target's
/// folder, which is synced and renamed over `path` only if `write` succeeded.
pub fn atomic_write(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating folder", &dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::InvalidInput(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("renaming temporary file onto", path, e)
    })
}

/// Writes `bytes` to `path` atomically.
pub fn atomic_write_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    atomic_write(path, |w| w.write_all(bytes))
}

/// The sidecar of a weights file: the same path with the extension `json`.
pub fn sidecar_path(weights: impl AsRef<Path>) -> PathBuf {
    weights.as_ref().with_extension("json")
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn save_json<T: Serialize + ?Sized>(path: impl AsRef<Path>, value: &T) -> Result<()> {
    let path = path.as_ref();
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    atomic_write_bytes(path, &bytes)
}

/// Reads a JSON file into `T`.
pub fn load_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Saves named tensors as safetensors at `path`, atomically, with optional
/// string metadata in the file's header.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &HashMap<String, Tensor>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    // Sort for a reproducible file.
    let mut named: Vec<(&String, Tensor)> = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        named.push((k, t.to_device(&Device::Cpu)?.contiguous()?));
    }
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes = safetensors::serialize(named, metadata).map_err(|source| Error::Safetensors {
        path: path.to_path_buf(),
        source,
    })?;
    atomic_write_bytes(path, &bytes)
}

/// Saves tensors at `path` and `sidecar` as JSON beside them (see
/// [`sidecar_path`]); the sidecar is written first, so a weights file never
/// exists without its description.
pub fn save_with_sidecar<T: Serialize + ?Sized>(
    path: impl AsRef<Path>,
    tensors: &HashMap<String, Tensor>,
    sidecar: &T,
) -> Result<()> {
    let path = path.as_ref();
    save_json(sidecar_path(path), sidecar)?;
    save_tensors(path, tensors, None)
}

/// Loads every tensor of a safetensors file onto `device`. A missing,
/// truncated or malformed file is an error naming it.
pub fn load_tensors(path: impl AsRef<Path>, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    let mut out = HashMap::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let t = view.load(device).map_err(|e| Error::Dataset {
            path: path.to_path_buf(),
            reason: format!("tensor `{name}`: {e}"),
        })?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Takes tensor `name` out of `tensors` loaded from `path`, checking its shape:
/// the error names the file and the tensor.
pub fn take_tensor(
    tensors: &mut HashMap<String, Tensor>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Tensor> {
    let t = tensors.remove(name).ok_or_else(|| Error::MissingTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if t.dims() != shape {
        return Err(Error::TensorShape {
            path: path.to_path_buf(),
            name: name.to_string(),
            expected: shape.to_vec(),
            found: t.dims().to_vec(),
        });
    }
    Ok(t)
}

/// Saves every variable of `varmap` at `path` (atomically), with `sidecar`
/// as JSON beside it.
pub fn save_varmap<T: Serialize + ?Sized>(
    varmap: &VarMap,
    path: impl AsRef<Path>,
    sidecar: &T,
) -> Result<()> {
    let tensors: HashMap<String, Tensor> = {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidInput("the variable map's lock is poisoned".to_string()))?;
        data.iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    };
    save_with_sidecar(path, &tensors, sidecar)
}

/// Loads a weights file into the variables of `varmap`. Every variable must be
/// in the file with the same shape (converted to the variable's dtype); extra
/// tensors in the file are an error too, since they mean the file was made for
/// another model. Errors name the file and the tensor.
pub fn load_varmap(varmap: &VarMap, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidInput("the variable map's lock is poisoned".to_string()))?;
    let device = match data.values().next() {
        Some(v) => v.device().clone(),
        None => Device::Cpu,
    };
    let mut tensors = load_tensors(path, &device)?;
    // Check everything before changing anything.
    let mut updates = Vec::with_capacity(data.len());
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = take_tensor(&mut tensors, path, name, var.dims())?;
        updates.push((var, t.to_dtype(var.dtype())?));
    }
    if let Some(extra) = tensors.keys().min() {
        return Err(Error::Dataset {
            path: path.to_path_buf(),
            reason: format!(
                "tensor `{extra}` (and {} more) belongs to no variable of this model",
                tensors.len() - 1
            ),
        });
    }
    for (var, t) in updates {
        var.set(&t)?;
    }
    Ok(())
}

/// Converts every floating-point tensor to `dtype` (for shipping weights in
/// f16), leaving integer tensors alone.
pub fn cast_floats(
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    tensors
        .iter()
        .map(|(k, t)| {
            let t = if t.dtype().is_float() {
                t.to_dtype(dtype)?
            } else {
                t.clone()
            };
            Ok((k.clone(), t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{Init, VarBuilder};

    #[test]
    fn tensors_and_sidecar_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/w.safetensors");
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let map = HashMap::from([("a.weight".to_string(), t.clone())]);
        save_with_sidecar(&path, &map, &serde_json::json!({"size": 64})).unwrap();
        let back = load_tensors(&path, &Device::Cpu).unwrap();
        assert_eq!(
            back["a.weight"].to_vec2::<f32>().unwrap(),
            t.to_vec2::<f32>().unwrap()
        );
        let side: serde_json::Value = load_json(sidecar_path(&path)).unwrap();
        assert_eq!(side["size"], 64);
        // No temporary files are left behind.
        let left: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.iter().all(|n| !n.ends_with(".tmp")), "{left:?}");
    }

    #[test]
    fn failed_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        atomic_write_bytes(&path, b"old").unwrap();
        let err = atomic_write(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn truncated_and_missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let t = Tensor::ones((4, 4), DType::F32, &Device::Cpu).unwrap();
        save_tensors(&path, &HashMap::from([("x".to_string(), t)]), None).unwrap();
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let msg = load_tensors(&path, &Device::Cpu).unwrap_err().to_string();
        assert!(msg.contains("w.safetensors"), "{msg}");
        let missing = dir.path().join("nope.safetensors");
        let msg = load_tensors(&missing, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope.safetensors"), "{msg}");
    }

    #[test]
    fn varmap_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let w = vb
            .pp("layer")
            .get_with_hints(
                (3, 2),
                "weight",
                Init::Randn {
                    mean: 0.,
                    stdev: 1.,
                },
            )
            .unwrap();
        save_varmap(&vm, &path, &serde_json::json!({})).unwrap();

        let vm2 = VarMap::new();
        let vb2 = VarBuilder::from_varmap(&vm2, DType::F32, &Device::Cpu);
        let w2 = vb2
            .pp("layer")
            .get_with_hints((3, 2), "weight", Init::Const(0.))
            .unwrap();
        load_varmap(&vm2, &path).unwrap();
        let _ = w2;
        let got = vm2.data().lock().unwrap()["layer.weight"]
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(got, w.to_vec2::<f32>().unwrap());

        // A model with another shape gets an error naming file and tensor.
        let vm3 = VarMap::new();
        let vb3 = VarBuilder::from_varmap(&vm3, DType::F32, &Device::Cpu);
        vb3.pp("layer")
            .get_with_hints((2, 2), "weight", Init::Const(0.))
            .unwrap();
        let msg = load_varmap(&vm3, &path).unwrap_err().to_string();
        assert!(
            msg.contains("m.safetensors") && msg.contains("layer.weight"),
            "{msg}"
        );
    }
}
