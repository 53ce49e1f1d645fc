//! Run folders: claiming them, atomic file and tensor writes, progress display, pictures.
pub mod cell;
pub mod curves;
pub mod heatmap;
pub mod progress;
pub mod svg;
pub mod tensorboard;

pub use progress::Progress;

use crate::error::{Context, Result};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The temporary sibling a file is written to before it is renamed over its final name. The name keeps the
/// extension, because some writers pick the format from it (`VarStore::save` and `.safetensors`).
fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(format!(".tmp-{}-", std::process::id()));
    name.push(path.file_name().unwrap_or_default());
    path.with_file_name(name)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directory fsync makes the rename itself durable; some filesystems refuse it, which is harmless.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes a file through `write(tmp)` then fsync and rename, so a crash leaves either the old or the new file.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Atomically replaces `path` with `bytes`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        Ok(())
    })
}

/// Atomically writes `value` as pretty JSON.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    atomic_write(path, text.as_bytes())
}

/// Atomically writes one JSON document per line.
pub fn write_jsonl<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row)?);
        text.push('\n');
    }
    atomic_write(path, text.as_bytes())
}

/// Numbers of `result.json` and `metrics.jsonl` that identify or configure a run rather than measure it.
const NOT_METRICS: [&str; 4] = ["seed", "index", "min_confidence", "resamples"];

/// The numbers of `v` outside lists under their dotted paths, leaving out [`NOT_METRICS`].
pub fn numbers(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
    if let Some(map) = v.as_object() {
        for (key, value) in map {
            if NOT_METRICS.contains(&key.as_str()) {
                continue;
            }
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value.as_f64() {
                Some(x) => {
                    out.insert(path, x);
                }
                None => numbers(value, &path, out),
            }
        }
    }
}

/// Writes named tensors as safetensors, in name order, from host copies: safetensors stores only contiguous CPU
/// data, and weights may live on a GPU or in channels-last layout.
pub fn write_tensors<'a, N: AsRef<str> + 'a>(
    tensors: impl IntoIterator<Item = (N, &'a Tensor)>,
    path: &Path,
) -> Result<()> {
    let mut host: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| (n.as_ref().to_string(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    host.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&host, path).with_context(|| format!("writing {}", path.display()))
}

/// The text of a retrain run folder's `model.json`, and its path.
pub fn read_model_json(dir: &Path) -> Result<(PathBuf, String)> {
    crate::error::ensure!(dir.exists(), crate::Error::Missing { path: dir.to_path_buf() });
    let path = dir.join("model.json");
    let text = fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is {} a finished retrain run?)", path.display(), dir.display()))?;
    Ok((path, text))
}

/// The file that marks a folder as a run's: written first when a run starts, read back when it resumes.
pub const CONFIG_FILE: &str = "config.toml";

/// Claims `out` for a new run: refuses a folder that holds one, then writes the resolved configuration. Returns
/// whether it created the folder.
pub fn claim_run_folder(out: &Path, config_toml: &str) -> Result<bool> {
    for existing in [CONFIG_FILE, "result.json", "checkpoints"] {
        crate::error::ensure!(
            !out.join(existing).exists(),
            crate::Error::RunBusy { path: out.to_path_buf(), existing: existing.to_string() }
        );
    }
    let created = !out.exists();
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    atomic_write(&out.join(CONFIG_FILE), config_toml.as_bytes())?;
    Ok(created)
}

/// Undoes [`claim_run_folder`] for a run that failed to start, so that nothing blocks its rerun: removes the
/// configuration, and the folder when the claim created it and nothing else was written there.
pub fn release_run_folder(out: &Path, created: bool) {
    let _ = fs::remove_file(out.join(CONFIG_FILE));
    if created {
        let _ = fs::remove_dir(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_flatten_objects_but_not_lists_or_identifiers() {
        let v = serde_json::json!({"a": 1.5, "seed": 3, "b": {"c": 2, "index": 7, "d": [1, 2]}, "e": "x"});
        let mut out = BTreeMap::new();
        numbers(&v, "", &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), [("a".to_string(), 1.5), ("b.c".to_string(), 2.0)]);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        atomic_write(&path, b"old").unwrap();
        let err = atomic_write_with(&path, |tmp| {
            fs::write(tmp, b"half")?;
            crate::error::bail!("disk full")
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "temporary file removed");
        write_jsonl(&path, &[1, 2]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n2\n");
    }
}
