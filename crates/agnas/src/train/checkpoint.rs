//! Checkpoints: weights, optimizer buffers, running accumulators and the loop position, written as one unit.
//!
//! Each checkpoint is a folder `step-<global step>`; the file `latest` names the newest complete one and is
//! replaced atomically after the folder is fully written, so a crash at any moment leaves a usable checkpoint.
use crate::error::{Context, Result};
use crate::report::{atomic_write, atomic_write_with, write_tensors};
use serde::{de::DeserializeOwned, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Tensor};

use super::Sgd;

const LATEST: &str = "latest";

/// The checkpoints folder of a run.
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoints { dir: dir.into() }
    }

    /// Saves everything needed to continue exactly where the loop stands; `state` holds the position.
    pub fn save<S: Serialize>(
        &self,
        global_step: u64,
        vs: &VarStore,
        opt: &Sgd,
        accumulators: &[(&str, &Tensor)],
        state: &S,
    ) -> Result<()> {
        let name = format!("step-{global_step:08}");
        let dir = self.dir.join(&name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        atomic_write_with(&dir.join("weights.safetensors"), |tmp| write_tensors(&vs.variables(), tmp))?;
        atomic_write_with(&dir.join("optimizer.safetensors"), |tmp| opt.save(tmp))?;
        atomic_write_with(&dir.join("accumulators.safetensors"), |tmp| {
            write_tensors(accumulators.iter().map(|(n, t)| (*n, *t)), tmp)
        })?;
        crate::report::write_json(&dir.join("state.json"), state)?;
        atomic_write(&self.dir.join(LATEST), name.as_bytes())?;
        // Older checkpoints are superseded only once `latest` points at the new one.
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let n = entry.file_name();
            let n = n.to_string_lossy();
            if n.starts_with("step-") && n != name.as_str() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>> {
        let latest = self.dir.join(LATEST);
        if !latest.exists() {
            return Ok(None);
        }
        let name = fs::read_to_string(&latest).with_context(|| format!("reading {}", latest.display()))?;
        let dir = self.dir.join(name.trim());
        if !dir.join("state.json").exists() {
            let message = format!("{} names it, but it is incomplete or missing", latest.display());
            return Err(crate::Error::Checkpoint { path: dir, message });
        }
        Ok(Some(dir))
    }

    /// Restores weights and optimizer buffers from `dir`; returns the accumulators and the state.
    pub fn load<S: DeserializeOwned>(
        dir: &Path,
        vs: &mut VarStore,
        opt: &mut Sgd,
    ) -> Result<(Vec<(String, Tensor)>, S)> {
        let weights = dir.join("weights.safetensors");
        vs.load(&weights).with_context(|| format!("loading {}", weights.display()))?;
        opt.load(&dir.join("optimizer.safetensors"))?;
        let acc = dir.join("accumulators.safetensors");
        let accumulators = Tensor::read_safetensors(&acc).with_context(|| format!("reading {}", acc.display()))?;
        let state_path = dir.join("state.json");
        let text = fs::read_to_string(&state_path).with_context(|| format!("reading {}", state_path.display()))?;
        let state = serde_json::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))?;
        Ok((accumulators, state))
    }
}
