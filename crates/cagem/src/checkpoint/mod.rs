//! Checkpoints: one safetensors file per run (RUN/checkpoint.safetensors) holding every
//! parameter and batch-norm statistic (`param/<name>`), Adam's moments (`adam.m/<name>`,
//! `adam.v/<name>`), and in its metadata the model and training configurations and the training
//! state (epochs done, Adam's step, random-stream positions) as JSON. One file, written to a
//! temporary name, synced and renamed, so a crash leaves the previous checkpoint intact. The
//! metadata also holds a CRC-32C of every tensor's bytes ("checksums": {name: hex}) and one of the
//! metadata itself, verified at load, so a damaged file is refused instead of trusted; the file
//! stays plain safetensors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cagem_autodiff::{Adam, Device, ParamId, Real, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

mod state;

pub use state::{EpochSums, TrainState};

use crate::atomic::write_atomic;
use crate::config::{ModelConfig, TrainConfig};
use crate::error::{Error, Result};
use crate::model::Cagem;

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const CONFIG_FILE: &str = "config.json";
const FORMAT: &str = "cagem-checkpoint-v1";
/// The metadata key of the tensors' CRC-32C checksums.
pub const CHECKSUMS: &str = "checksums";
/// The metadata key of a CRC-32C over the other metadata entries (configurations, state).
pub const META_CHECKSUM: &str = "metadata_checksum";

/// CRC-32C over every metadata entry but its own, in key order (key and value each followed by
/// a NUL, so that no two different maps hash the same bytes).
fn metadata_crc(meta: &HashMap<String, String>) -> u32 {
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != META_CHECKSUM).collect();
    keys.sort();
    keys.iter().fold(0, |crc, k| {
        let crc = crc32c::crc32c_append(crc, k.as_bytes());
        let crc = crc32c::crc32c_append(crc, &[0]);
        let crc = crc32c::crc32c_append(crc, meta[*k].as_bytes());
        crc32c::crc32c_append(crc, &[0])
    })
}

/// The configurations of a run as readable JSON (RUN/config.json), with what resumes changed.
pub fn config_json(model: &ModelConfig, train: &TrainConfig, history: &[serde_json::Value]) -> String {
    let v = serde_json::json!({ "model": model, "train": train, "history": history });
    serde_json::to_string_pretty(&v).expect("configs serialise") + "\n"
}

fn to_bytes<T: Real>(t: &Tensor<T>) -> Vec<u8> {
    bytemuck::cast_slice(&t.to_vec()).to_vec()
}

fn dtype<T: Real>() -> Dtype {
    if T::NAME == "f64" { Dtype::F64 } else { Dtype::F32 }
}

/// Saves model, optimiser and state to RUN/checkpoint.safetensors.
pub fn save<T: Real>(
    dir: &Path,
    model: &Cagem<T>,
    adam: &Adam<T>,
    train: &TrainConfig,
    state: &TrainState,
) -> Result<()> {
    save_as(dir, CHECKPOINT_FILE, model, adam, train, state)
}

/// Saves model, optimiser and state to RUN/`file` (atomically, as every checkpoint).
pub fn save_as<T: Real>(
    dir: &Path,
    file: &str,
    model: &Cagem<T>,
    adam: &Adam<T>,
    train: &TrainConfig,
    state: &TrainState,
) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (id, e) in model.store.iter() {
        named.push((format!("param/{}", e.name), vec![e.value.rows(), e.value.cols()], to_bytes(&e.value)));
        if let Some((m, v)) = adam.moments(id) {
            named.push((format!("adam.m/{}", e.name), vec![m.rows(), m.cols()], to_bytes(m)));
            named.push((format!("adam.v/{}", e.name), vec![v.rows(), v.cols()], to_bytes(v)));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = named
        .iter()
        .map(|(n, shape, bytes)| {
            (n.clone(), TensorView::new(dtype::<T>(), shape.clone(), bytes).expect("consistent view"))
        })
        .collect();
    let checksums: serde_json::Map<String, serde_json::Value> =
        named.iter().map(|(n, _, bytes)| (n.clone(), format!("{:08x}", crc32c::crc32c(bytes)).into())).collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert(CHECKSUMS.to_string(), serde_json::Value::Object(checksums).to_string());
    meta.insert("model".to_string(), serde_json::to_string(&model.cfg).expect("serialise"));
    meta.insert("train".to_string(), serde_json::to_string(train).expect("serialise"));
    meta.insert("state".to_string(), serde_json::to_string(state).expect("serialise"));
    meta.insert(META_CHECKSUM.to_string(), format!("{:08x}", metadata_crc(&meta)));
    let path = dir.join(file);
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::checkpoint(&path, format!("cannot serialise: {e}")))?;
    write_atomic(&path, &bytes)
}

/// The configurations and state stored in a checkpoint.
pub struct CheckpointMeta {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub state: TrainState,
}

fn read_checkpoint(dir: &Path, file: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = dir.join(file);
    if !path.exists() && file == crate::train::best::BEST_FILE && dir.join(CHECKPOINT_FILE).exists() {
        return Err(Error::checkpoint(
            &path,
            "not found: the run keeps a best checkpoint only with a validation split (train with --valid-fraction F)",
        ));
    }
    if !path.exists() {
        return Err(Error::checkpoint(
            &path,
            "not found (is this a cagem run folder? training writes it after the first epoch)",
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", e))?;
    Ok((path, bytes))
}

fn parse_meta(path: &Path, st_meta: &Option<HashMap<String, String>>) -> Result<CheckpointMeta> {
    let meta = st_meta.as_ref().ok_or_else(|| Error::checkpoint(path, "no metadata: not written by cagem"))?;
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) => return Err(Error::checkpoint(path, format!("format '{f}', this cagem reads '{FORMAT}'"))),
        None => return Err(Error::checkpoint(path, "no format tag: not written by cagem")),
    }
    // Older checkpoints have no metadata checksum (their tensors' notice says they are unverified).
    if let Some(stored) = meta.get(META_CHECKSUM) {
        let computed = format!("{:08x}", metadata_crc(meta));
        if *stored != computed {
            return Err(Error::checkpoint(
                path,
                format!("the metadata fails its checksum (stored {stored}, computed {computed}): the file is corrupt"),
            ));
        }
    }
    let field = |k: &str| meta.get(k).ok_or_else(|| Error::checkpoint(path, format!("metadata lacks '{k}'")));
    let bad = |k: &str, e: serde_json::Error| Error::checkpoint(path, format!("metadata '{k}' is malformed: {e}"));
    let meta = CheckpointMeta {
        model: serde_json::from_str(field("model")?).map_err(|e| bad("model", e))?,
        train: serde_json::from_str(field("train")?).map_err(|e| bad("train", e))?,
        state: serde_json::from_str(field("state")?).map_err(|e| bad("state", e))?,
    };
    meta.model.validate().map_err(|e| Error::checkpoint(path, format!("metadata 'model' is unusable: {e}")))?;
    Ok(meta)
}

/// Checks every tensor against its stored CRC-32C. Checkpoints written before checksums existed
/// have none: they load with a one-line notice.
fn verify_checksums(path: &Path, meta: &Option<HashMap<String, String>>, st: &SafeTensors<'_>) -> Result<()> {
    let Some(text) = meta.as_ref().and_then(|m| m.get(CHECKSUMS)) else {
        eprintln!(
            "note: {} carries no checksums (written before cagem stored them); its tensors are not verified",
            path.display()
        );
        return Ok(());
    };
    let sums: HashMap<String, String> = serde_json::from_str(text)
        .map_err(|e| Error::checkpoint(path, format!("metadata '{CHECKSUMS}' is malformed: {e}")))?;
    let mut names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    names.sort();
    for name in &names {
        let data = st.tensor(name).map_err(|e| Error::checkpoint(path, format!("tensor '{name}': {e}")))?.data();
        let stored = sums
            .get(name)
            .ok_or_else(|| Error::checkpoint(path, format!("tensor '{name}' has no checksum: the file was altered")))?;
        let computed = format!("{:08x}", crc32c::crc32c(data));
        if *stored != computed {
            return Err(Error::checkpoint(
                path,
                format!(
                    "tensor '{name}' fails its checksum (stored {stored}, computed {computed}): the file is corrupt"
                ),
            ));
        }
    }
    if let Some(missing) = sums.keys().find(|n| !names.contains(n)) {
        return Err(Error::checkpoint(path, format!("tensor '{missing}' is listed in the checksums but missing")));
    }
    Ok(())
}

/// Reads only the configurations and state of a run's checkpoint.
pub fn load_meta(dir: &Path) -> Result<CheckpointMeta> {
    let (path, bytes) = read_checkpoint(dir, CHECKPOINT_FILE)?;
    let (_, m) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::checkpoint(&path, format!("corrupt: {e}")))?;
    parse_meta(&path, m.metadata())
}

/// Restores model (on `device`), optimiser and metadata from a run's checkpoint.
pub fn load<T: Real>(dir: &Path, device: &Device) -> Result<(Cagem<T>, Adam<T>, CheckpointMeta)> {
    load_file(dir, CHECKPOINT_FILE, device)
}

/// `load` from RUN/`file` (checkpoint.safetensors, or best.safetensors).
pub fn load_file<T: Real>(dir: &Path, file: &str, device: &Device) -> Result<(Cagem<T>, Adam<T>, CheckpointMeta)> {
    let (path, bytes) = read_checkpoint(dir, file)?;
    let corrupt = |e: safetensors::SafeTensorError| Error::checkpoint(&path, format!("corrupt or truncated: {e}"));
    let (_, m) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let meta = parse_meta(&path, m.metadata())?;
    let st = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    verify_checksums(&path, m.metadata(), &st)?;
    let mut model = Cagem::<T>::new(meta.model.clone(), 0, &Device::Cpu);
    let read = |name: &str, shape: (usize, usize)| -> Result<Option<Tensor<T>>> {
        let view = match st.tensor(name) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        if view.shape() != [shape.0, shape.1] {
            return Err(Error::checkpoint(
                &path,
                format!("'{name}' has shape {:?}, the model needs {shape:?}", view.shape()),
            ));
        }
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => {
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4")) as f64).collect()
            }
            Dtype::F64 => view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8"))).collect(),
            d => return Err(Error::checkpoint(&path, format!("'{name}' has dtype {d:?}, expected F32 or F64"))),
        };
        Ok(Some(Tensor::from_f64(&Device::Cpu, shape.0, shape.1, &values)))
    };
    let mut adam = Adam::new();
    adam.t = meta.state.adam_t;
    let ids: Vec<ParamId> = model.store.ids().collect();
    for id in ids {
        let (name, shape) = {
            let e = model.store.entry(id);
            (e.name.clone(), e.value.shape())
        };
        let value = read(&format!("param/{name}"), shape)?
            .ok_or_else(|| Error::checkpoint(&path, format!("missing parameter '{name}'")))?;
        *model.store.get_mut(id) = value;
        if let (Some(m), Some(v)) = (read(&format!("adam.m/{name}"), shape)?, read(&format!("adam.v/{name}"), shape)?) {
            adam.set_moments(id, m.to_device(device), v.to_device(device));
        }
    }
    model.store.to_device(device);
    Ok((model, adam, meta))
}
