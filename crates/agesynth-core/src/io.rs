//! Safetensors save and load with atomic writes and a JSON sidecar.
//!
//! Every file agesynth writes goes through [`atomic_write`]: the bytes go to a
//! temporary file beside the target, are flushed to disk, and the temporary
//! file is renamed over the target. A crash or a full disk leaves the previous
//! file intact, never a half-written one.
//!
//! Weights live in `NAME.safetensors`; the configuration and metadata they
//! were made with live beside them in `NAME.json` (the *sidecar*).
//!
//! Reading is bounded: no file is read past a limit (the memory budget for
//! weights, [`MAX_JSON_BYTES`] for JSON), so an endless input such as
//! `/dev/zero` is refused instead of filling the memory. Loaded weights are
//! an invariant: every tensor [`load_tensors`] returns holds finite values,
//! and every tensor [`take_tensor`] and [`load_varmap`] hand to a model is of
//! a floating-point type.
//!
//! The temporary file of an interrupted write (`.NAME.PID.tmp`) is removed by
//! [`clean_stale_temporaries`] once its process is gone.

use std::{
    collections::HashMap,
    fs::{self, File},
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use candle_core::{safetensors::Load, DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{de::DeserializeOwned, Serialize};

use crate::{Error, Result};

/// The largest JSON file read (configs, sidecars, checkpoint parts, the
/// synthetic-pairs index): 256 MiB.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Reads the whole of `path`, refusing to read past `limit` bytes (the error
/// names the file, `what` it was read as and the limit). Unlike
/// [`std::fs::read`] it never trusts the file's reported length, so a device
/// or pipe without end (`/dev/zero`) stops at the limit.
pub fn read_limited(path: impl AsRef<Path>, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let hint = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len());
    if hint > limit {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(hint as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading", path, e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            what,
            limit,
        });
    }
    Ok(bytes)
}

/// The temporary file [`atomic_write`] writes `path`'s bytes into:
/// `.NAME.PID.tmp` beside it.
pub fn temporary_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// The process id in a temporary file name `.NAME.PID.tmp`, if it is one.
pub fn temporary_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (_, pid) = rest.rsplit_once('.')?;
    pid.parse().ok()
}

/// Removes the temporary files of interrupted writes in `dir`
/// (`.NAME.PID.tmp` whose process is no longer alive; with `all`, every
/// such file, for a folder this process holds the only writer's lock of) and
/// returns them. A folder that does not exist holds none.
pub fn clean_stale_temporaries(dir: &Path, all: bool) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temporary_owner(&name) else {
            continue;
        };
        let own = pid == std::process::id();
        if own || (!all && crate::process::pid_alive(pid)) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) {
            let p = e.path();
            fs::remove_file(&p).map_err(|err| Error::io("removing stale temporary", &p, err))?;
            removed.push(p);
        }
    }
    removed.sort();
    Ok(removed)
}

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
    let tmp = temporary_path(path)
        .ok_or_else(|| Error::InvalidInput(format!("{} is not a file path", path.display())))?;
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

/// Reads a JSON file into `T` (at most [`MAX_JSON_BYTES`]).
pub fn load_json<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<T> {
    let path = path.as_ref();
    let bytes = read_limited(path, MAX_JSON_BYTES, "a JSON file")?;
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

/// Whether every value of a float tensor's little-endian `bytes` is finite
/// (integer and boolean types always are). Reads the exponent bits, so it
/// costs one pass and no conversion.
pub fn raw_all_finite(dtype: safetensors::Dtype, bytes: &[u8]) -> bool {
    use safetensors::Dtype as D;
    match dtype {
        D::F32 => bytes
            .chunks_exact(4)
            .all(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000 != 0x7f80_0000),
        D::F64 => bytes.chunks_exact(8).all(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a) & 0x7ff0_0000_0000_0000 != 0x7ff0_0000_0000_0000
        }),
        D::F16 => bytes
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 != 0x7c00),
        D::BF16 => bytes
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 != 0x7f80),
        // 8-bit floats: E4M3 has NaN only (S.1111.111), E5M2 inf and NaN.
        D::F8_E4M3 => bytes.iter().all(|b| b & 0x7f != 0x7f),
        D::F8_E5M2 => bytes.iter().all(|b| b & 0x7c != 0x7c),
        _ => true,
    }
}

/// Loads every tensor of a safetensors file onto `device`. A missing,
/// truncated or malformed file is an error naming it; so is a file larger
/// than the memory budget (see [`crate::budget`]) and a float tensor holding
/// NaN or infinite values ([`Error::NonFiniteTensor`]): damaged weights are
/// refused, never run.
pub fn load_tensors(path: impl AsRef<Path>, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = path.as_ref();
    let limit = crate::budget::MemoryBudget::from_env()?.limit();
    let bytes = read_limited(path, limit, "a weights file (the memory limit)")?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
    let mut out = HashMap::with_capacity(st.len());
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in &names {
        let view = st.tensor(name).map_err(|source| Error::Safetensors {
            path: path.to_path_buf(),
            source,
        })?;
        if !raw_all_finite(view.dtype(), view.data()) {
            return Err(Error::NonFiniteTensor {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    for (name, view) in st.tensors() {
        let t = view.load(device).map_err(|e| Error::Dataset {
            path: path.to_path_buf(),
            reason: format!("tensor `{name}`: {e}"),
        })?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Takes tensor `name` out of `tensors` loaded from `path`, checking its
/// shape and that it is of a floating-point type (weights are): the error
/// names the file and the tensor.
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
    if !t.dtype().is_float() {
        return Err(Error::TensorDType {
            path: path.to_path_buf(),
            name: name.to_string(),
            dtype: format!("{:?}", t.dtype()),
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
/// in the file with the same shape and a float type (converted to the
/// variable's dtype) and finite values; extra tensors in the file are an error
/// too, since they mean the file was made for another model. Errors name the
/// file and the tensor.
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

/// `true` when every value of `t` is finite (integer tensors always are).
/// 0·x is 0 for finite x and NaN for NaN and ±inf, so the sum is 0 exactly
/// when all are finite.
pub fn tensor_all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(true);
    }
    let s = (t * 0.0)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(s == 0.0)
}

/// Checks a network's output: NaN or infinite values are
/// [`Error::NonFiniteOutput`] naming `what`, never an image.
pub fn ensure_finite_output(t: &Tensor, what: &str) -> Result<()> {
    if tensor_all_finite(t)? {
        Ok(())
    } else {
        Err(Error::NonFiniteOutput {
            what: what.to_string(),
        })
    }
}

/// The largest finite value of a float dtype.
pub fn dtype_max(dtype: DType) -> Option<f64> {
    match dtype {
        DType::F16 => Some(65504.0),
        DType::BF16 => Some(3.389_531_389_251_535_5e38),
        DType::F32 => Some(f32::MAX as f64),
        DType::F64 => Some(f64::MAX),
        _ => None,
    }
}

/// Converts every floating-point tensor to `dtype` (for shipping weights in
/// f16), leaving integer tensors alone. A finite value too large for `dtype`
/// is refused ([`Error::ConversionOverflow`], naming the tensor) instead of
/// being written as an infinity; so is a tensor already holding NaN or
/// infinite values ([`Error::NonFiniteOutput`]).
pub fn cast_floats(
    tensors: &HashMap<String, Tensor>,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    names
        .into_iter()
        .map(|k| {
            let t = &tensors[k];
            let t = if t.dtype().is_float() {
                if !tensor_all_finite(t)? {
                    return Err(Error::NonFiniteOutput {
                        what: format!("tensor `{k}` (before any conversion)"),
                    });
                }
                let converted = t.to_dtype(dtype)?;
                if !tensor_all_finite(&converted)? {
                    let max_abs = t
                        .abs()?
                        .flatten_all()?
                        .to_dtype(DType::F64)?
                        .max(0)?
                        .to_scalar::<f64>()?;
                    return Err(Error::ConversionOverflow {
                        name: k.clone(),
                        max_abs,
                        dtype: format!("{dtype:?}").to_lowercase(),
                        dtype_max: dtype_max(dtype).unwrap_or(f64::INFINITY),
                    });
                }
                converted
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

    /// Issue 17, item 2: an endless input (`/dev/zero`) is read no further
    /// than the limit.
    #[test]
    fn reads_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ten.bin");
        fs::write(&p, [7u8; 10]).unwrap();
        assert_eq!(read_limited(&p, 10, "a test").unwrap().len(), 10);
        let err = read_limited(&p, 9, "a test").unwrap_err();
        assert!(matches!(err, Error::FileTooLarge { limit: 9, .. }), "{err}");
        #[cfg(unix)]
        {
            let err = read_limited("/dev/zero", 1 << 20, "a photo").unwrap_err();
            assert!(err.to_string().contains("/dev/zero"), "{err}");
            let err = load_json::<serde_json::Value>("/dev/zero").unwrap_err();
            assert!(matches!(err, Error::FileTooLarge { .. }), "{err}");
        }
    }

    /// Issue 17, item 3: NaN or infinite weights are refused at load, naming
    /// the file and the tensor, in every float precision.
    #[test]
    fn non_finite_weights_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let path = dir.path().join(format!("{dtype:?}.safetensors"));
                let t = Tensor::new(&[1.0f32, bad, 3.0], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let ok = Tensor::new(&[1.0f32], &Device::Cpu)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let map = HashMap::from([("a.ok".to_string(), ok), ("b.bad".to_string(), t)]);
                save_tensors(&path, &map, None).unwrap();
                let err = load_tensors(&path, &Device::Cpu).unwrap_err();
                assert!(
                    matches!(&err, Error::NonFiniteTensor { name, .. } if name == "b.bad"),
                    "{dtype:?} {bad}: {err}"
                );
                assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
            }
        }
        // The largest finite values pass.
        let path = dir.path().join("edge.safetensors");
        let t = Tensor::new(&[65504.0f32, -65504.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        save_tensors(&path, &HashMap::from([("x".to_string(), t)]), None).unwrap();
        load_tensors(&path, &Device::Cpu).unwrap();
    }

    /// Issue 17, item 3: an integer tensor where a model expects weights is
    /// refused instead of being converted.
    #[test]
    fn integer_weights_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("int.safetensors");
        let t = Tensor::new(&[1u32, 2, 3, 4, 5, 6], &Device::Cpu)
            .unwrap()
            .reshape((3, 2))
            .unwrap();
        save_tensors(
            &path,
            &HashMap::from([("layer.weight".to_string(), t)]),
            None,
        )
        .unwrap();
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        vb.pp("layer")
            .get_with_hints((3, 2), "weight", Init::Const(0.))
            .unwrap();
        let err = load_varmap(&vm, &path).unwrap_err();
        assert!(
            matches!(&err, Error::TensorDType { name, .. } if name == "layer.weight"),
            "{err}"
        );
    }

    /// Issue 17, item 3: converting to f16 refuses values that would become
    /// infinities, naming the tensor.
    #[test]
    fn conversion_refuses_overflow() {
        let big = Tensor::new(&[1.0f32, -1.0e5], &Device::Cpu).unwrap();
        let fine = Tensor::new(&[60000.0f32], &Device::Cpu).unwrap();
        let map = HashMap::from([("big".to_string(), big), ("fine".to_string(), fine.clone())]);
        let err = cast_floats(&map, DType::F16).unwrap_err();
        assert!(
            matches!(&err, Error::ConversionOverflow { name, .. } if name == "big"),
            "{err}"
        );
        assert!(err.to_string().contains("65504"), "{err}");
        let ok = cast_floats(&HashMap::from([("fine".to_string(), fine)]), DType::F16).unwrap();
        assert_eq!(ok["fine"].dtype(), DType::F16);
        let nan = Tensor::new(&[f32::NAN], &Device::Cpu).unwrap();
        assert!(cast_floats(&HashMap::from([("n".to_string(), nan)]), DType::F32).is_err());
    }

    /// Issue 17, item 6: temporaries of dead writers are removed, those of
    /// live ones (and other files) kept.
    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        let dead = {
            let mut c = std::process::Command::new("true").spawn().unwrap();
            let pid = c.id();
            c.wait().unwrap();
            pid
        };
        #[cfg(not(unix))]
        let dead = u32::MAX;
        let stale = dir.path().join(format!(".x.png.{dead}.tmp"));
        let live = dir
            .path()
            .join(format!(".y.png.{}.tmp", std::process::id()));
        let other = dir.path().join("z.tmp");
        for p in [&stale, &live, &other] {
            fs::write(p, b"x").unwrap();
        }
        let removed = clean_stale_temporaries(dir.path(), false).unwrap();
        #[cfg(unix)]
        assert_eq!(removed, vec![stale.clone()]);
        assert!(live.exists() && other.exists());
        assert_eq!(temporary_owner(".a.b.c.42.tmp"), Some(42));
        assert_eq!(temporary_owner("a.42.tmp"), None);
        assert!(clean_stale_temporaries(&dir.path().join("none"), true)
            .unwrap()
            .is_empty());
        let _ = removed;
    }
}
