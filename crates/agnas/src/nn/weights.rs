//! Model weights as safetensors under PyTorch's state_dict names, for exchange with PyTorch checkpoints.
use crate::error::{bail, Result};
use crate::report::write_tensors;
use crate::{Error, WeightsCause};
use std::collections::BTreeSet;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

const TRACKED: &str = "num_batches_tracked";

/// Writes every variable, plus the `num_batches_tracked` counter PyTorch keeps beside each BN's running statistics
/// (`batches` of them), so that `model.load_state_dict(safetensors.torch.load_file(path))` accepts the file strictly.
pub fn save(vs: &VarStore, path: &Path, batches: i64) -> Result<()> {
    let vars = vs.variables();
    let counter = Tensor::from(batches).to_kind(Kind::Int64);
    let mut named: Vec<(String, &Tensor)> = vars.iter().map(|(n, t)| (n.clone(), t)).collect();
    for name in vars.keys() {
        if let Some(bn) = name.strip_suffix(".running_mean") {
            named.push((format!("{bn}.{TRACKED}"), &counter));
        }
    }
    write_tensors(named.iter().map(|(n, t)| (n.as_str(), *t)), path)
}

/// The tensor names of a safetensors file, read from its header only.
pub fn names(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let read = || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len)?;
        let mut header = vec![0u8; u64::from_le_bytes(len).min(100 << 20) as usize];
        file.read_exact(&mut header)?;
        Ok(header)
    };
    let corrupt = |source: WeightsCause| Error::CorruptWeights { path: path.to_path_buf(), source };
    let header = read().map_err(|e| corrupt(e.into()))?;
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| corrupt(e.into()))?;
    Ok(map.into_iter().map(|(k, _)| k).filter(|k| k != "__metadata__").collect())
}

/// Loads weights by name, strictly: every variable must be in the file with its shape, and the file may hold nothing
/// else besides `num_batches_tracked` counters. A `module.` prefix (PyTorch's DataParallel) is stripped.
pub fn load(vs: &VarStore, path: &Path) -> Result<()> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::CorruptWeights { path: path.to_path_buf(), source: e.into() })?;
    let prefixed = !tensors.is_empty() && tensors.iter().all(|(n, _)| n.starts_with("module."));
    let mut vars = vs.variables();
    let mut unexpected = Vec::new();
    let mut mismatched = Vec::new();
    tch::no_grad(|| {
        for (name, t) in &tensors {
            let name = if prefixed { &name["module.".len()..] } else { name.as_str() };
            match vars.remove(name) {
                Some(mut v) if v.size() == t.size() => {
                    v.copy_(&t.to_kind(v.kind()).to_device(v.device()));
                }
                Some(v) => mismatched.push(format!("{name}: file {:?}, model {:?}", t.size(), v.size())),
                None if name.ends_with(TRACKED) => {}
                None => unexpected.push(name.to_string()),
            }
        }
    });
    let missing: BTreeSet<String> = vars.into_keys().collect();
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        return Ok(());
    }
    let list = |v: &[String]| {
        let shown: Vec<&str> = v.iter().take(5).map(|s| s.as_str()).collect();
        format!(
            "{}{}",
            shown.join(", "),
            if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() }
        )
    };
    let missing: Vec<String> = missing.into_iter().collect();
    unexpected.sort();
    let mut msg = format!("{} does not fit the model", path.display());
    if !mismatched.is_empty() {
        msg.push_str(&format!("; shapes differ: {}", list(&mismatched)));
    }
    if !missing.is_empty() {
        msg.push_str(&format!("; missing: {}", list(&missing)));
    }
    if !unexpected.is_empty() {
        msg.push_str(&format!("; unexpected: {}", list(&unexpected)));
    }
    bail!("{msg} (is the genotype, channel count, layer count or class count different?)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::{batch_norm2d, conv2d};
    use crate::nn::layers::ConvSpec;
    use tch::Device;

    fn model(vs: &VarStore, c: i64) {
        let _ = conv2d(vs.root() / "conv", 3, c, 3, ConvSpec::default());
        let _ = batch_norm2d(vs.root() / "bn", c, true);
    }

    #[test]
    fn round_trip_with_pytorch_counters_and_strict_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = VarStore::new(Device::Cpu);
        model(&a, 4);
        save(&a, &path, 7).unwrap();
        let names: Vec<String> = Tensor::read_safetensors(&path).unwrap().into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"bn.num_batches_tracked".to_string()), "{names:?}");
        let b = VarStore::new(Device::Cpu);
        model(&b, 4);
        load(&b, &path).unwrap();
        let (wa, wb) = (&a.variables()["conv.weight"], &b.variables()["conv.weight"]);
        assert!(wa.equal(wb));

        let wrong = VarStore::new(Device::Cpu);
        model(&wrong, 5);
        let err = load(&wrong, &path).unwrap_err().to_string();
        assert!(err.contains("conv.weight") && err.contains("shapes differ"), "{err}");
        let extra = VarStore::new(Device::Cpu);
        let _ = conv2d(extra.root() / "conv", 3, 4, 3, ConvSpec::default());
        let err = load(&extra, &path).unwrap_err().to_string();
        assert!(err.contains("unexpected: bn.bias"), "{err}");
    }

    #[test]
    fn data_parallel_prefix_is_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = VarStore::new(Device::Cpu);
        model(&a, 2);
        let vars = a.variables();
        write_tensors(
            vars.iter()
                .map(|(n, t)| (format!("module.{n}"), t))
                .collect::<Vec<_>>()
                .iter()
                .map(|(n, t)| (n.as_str(), *t)),
            &path,
        )
        .unwrap();
        let b = VarStore::new(Device::Cpu);
        model(&b, 2);
        load(&b, &path).unwrap();
    }
}
