//! Search spaces: each folder holds its supernet, genotype type, derivation rule (and evaluation network).
pub mod darts;
pub mod nb201;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// Logits and the attention importances of one supernet forward.
pub struct SupernetOutput {
    pub logits: Tensor,
    /// Σ over batch and channels of each candidate's gates, shape (decision points…, candidates), detached.
    pub importance: Tensor,
}

/// A supernet whose every decision point carries an AGNAS attention module.
pub trait Supernet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> SupernetOutput;
}

/// What a search produced: the genotype (for `genotype.json`) and what it is worth (for `result.json`).
pub struct Derived {
    /// One line naming the architecture (the NB201 arch string, …).
    pub name: String,
    pub genotype: serde_json::Value,
    /// Extra facts for the result, e.g. the benchmark record.
    pub result: serde_json::Value,
    /// A Markdown section for `summary.md` showing how the choice was made.
    pub details_md: String,
    /// More files for the run folder, by name (genotype text, pictures).
    pub files: Vec<(String, Vec<u8>)>,
}

/// A search space, as the generic search loop sees it.
pub trait SearchSpace {
    fn name(&self) -> &'static str;
    /// A supernet for images of `in_channels` channels and `num_classes` classes.
    fn build(&self, p: &nn::Path, in_channels: i64, num_classes: i64) -> Box<dyn Supernet>;
    /// Accumulated importances with named axes, for `importances.json`.
    fn describe_importance(&self, importance: &Tensor) -> Result<serde_json::Value>;
    /// The architecture read off the held-out importances.
    fn derive(&self, importance: &Tensor) -> Result<Derived>;
}

/// The spaces `agnas search --space` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpaceName {
    #[default]
    Nb201,
    Darts,
}

impl std::str::FromStr for SpaceName {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nb201" | "nas-bench-201" => Ok(SpaceName::Nb201),
            "darts" => Ok(SpaceName::Darts),
            "proxyless" => anyhow::bail!("space `{s}` is not implemented yet (available: nb201, darts)"),
            _ => anyhow::bail!("unknown space `{s}` (available: nb201, darts)"),
        }
    }
}

impl SpaceName {
    pub fn as_str(self) -> &'static str {
        match self {
            SpaceName::Nb201 => "nb201",
            SpaceName::Darts => "darts",
        }
    }
}

/// Nested lists of a tensor's values, for JSON (importances are small).
pub fn tensor_to_nested(t: &Tensor) -> Result<serde_json::Value> {
    let t = t.to_kind(tch::Kind::Double).to_device(tch::Device::Cpu).contiguous();
    let size = t.size();
    let flat: Vec<f64> = Vec::try_from(t.flatten(0, -1))?;
    fn nest(values: &[f64], size: &[i64]) -> serde_json::Value {
        match size {
            [] => serde_json::json!(values[0]),
            [_] => serde_json::json!(values),
            [n, rest @ ..] => {
                let chunk = values.len() / *n as usize;
                serde_json::Value::Array(values.chunks(chunk.max(1)).map(|c| nest(c, rest)).collect())
            }
        }
    }
    Ok(nest(&flat, &size))
}

/// The tensor (float64, CPU) of nested lists written by [`tensor_to_nested`]; every row of a level must have the
/// same length and every value must be a number.
pub fn nested_to_tensor(value: &serde_json::Value) -> Result<Tensor> {
    fn walk(v: &serde_json::Value, depth: usize, shape: &mut Vec<i64>, flat: &mut Vec<f64>) -> Result<()> {
        match v {
            serde_json::Value::Array(items) => {
                if shape.len() == depth {
                    shape.push(items.len() as i64);
                }
                anyhow::ensure!(shape[depth] == items.len() as i64, "rows of unequal length at depth {depth}");
                items.iter().try_for_each(|item| walk(item, depth + 1, shape, flat))
            }
            serde_json::Value::Number(n) => {
                anyhow::ensure!(shape.len() == depth, "a number where a list was expected at depth {depth}");
                flat.push(n.as_f64().unwrap_or(f64::NAN));
                Ok(())
            }
            other => anyhow::bail!("expected a number or a list, found {other}"),
        }
    }
    let (mut shape, mut flat) = (Vec::new(), Vec::new());
    walk(value, 0, &mut shape, &mut flat)?;
    Ok(Tensor::from_slice(&flat).reshape(&shape))
}
