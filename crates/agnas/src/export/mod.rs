//! `agnas export`: an evaluation network as a standard ONNX model or as a standalone PyTorch file with its weights.
//!
//! Both are written from the network's own inference graph ([`crate::nn::graph`]), and each export is checked
//! before it is written: the graph, run by libtorch, must give the network's logits.
pub mod onnx;
pub mod pytorch;

use crate::error::{ensure, Context, Result};
use crate::nn::graph::{self, Graph};
use crate::report::{atomic_write, write_tensors};
use crate::space::EvalNetwork;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

pub use onnx::OnnxOptions;

/// Variable names by tensor address ([`graph::tensor_names`]).
pub type Names = HashMap<usize, String>;

/// The input image shape the export is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub channels: i64,
    pub height: i64,
    pub width: i64,
}

#[derive(Debug, Clone)]
pub enum Format {
    Onnx(OnnxOptions),
    /// `NAME.py` and `NAME.safetensors`.
    PyTorch,
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Largest |logit difference| between the exported graph, run by libtorch, and the network on a random batch.
    pub graph_max_abs_diff: f64,
}

/// The largest logit difference the self-check accepts (float32 reassociation of folded batch norms stays far
/// below it; a wrong graph is far above).
const SELF_CHECK: f64 = 1e-3;

/// The inference graph of `net`, whose variables live in `vs`, and their names.
pub fn network_graph(net: &dyn EvalNetwork, vs: &VarStore) -> (Graph, Names) {
    let (mut g, x) = Graph::new();
    net.export(&mut g, x);
    (g, graph::tensor_names(vs))
}

/// Writes `net` to `out` in `format` after checking its graph against the network; `doc` heads the files.
pub fn write(
    net: &dyn EvalNetwork,
    vs: &VarStore,
    input: Shape,
    format: &Format,
    out: &Path,
    doc: &str,
) -> Result<Exported> {
    let (graph, names) = network_graph(net, vs);
    let folded = match format {
        Format::Onnx(o) if o.fold_batch_norms => Some(graph.fold_batch_norms().0),
        _ => None,
    };
    let diff = self_check(net, folded.as_ref().unwrap_or(&graph), input, vs.device())?;
    let files = match format {
        Format::Onnx(options) => {
            let opts = OnnxOptions { doc: doc.to_string(), ..options.clone() };
            atomic_write(out, &onnx::model(&graph, &names, input, &opts)?)?;
            vec![out.to_path_buf()]
        }
        Format::PyTorch => {
            let (source, state) = pytorch::module(&graph, &names, input, doc)?;
            let weights = out.with_extension("safetensors");
            write_tensors(state.iter().map(|(n, t)| (n.as_str(), t)), &weights)?;
            atomic_write(out, source.as_bytes())?;
            vec![out.to_path_buf(), weights]
        }
    };
    let bytes = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    Ok(Exported { files, bytes, graph_max_abs_diff: diff })
}

fn self_check(net: &dyn EvalNetwork, graph: &Graph, input: Shape, device: tch::Device) -> Result<f64> {
    tch::manual_seed(0);
    let x = Tensor::randn([2, input.channels, input.height, input.width], (Kind::Float, device));
    let diff = tch::no_grad(|| {
        let want = net.logits(&x);
        let got = graph.eval(&x);
        ensure!(
            got.size() == want.size(),
            "the exported graph gives {:?} logits, the network {:?}",
            got.size(),
            want.size()
        );
        Ok((got - want).abs().max().double_value(&[]))
    })
    .context("checking the export against the network")?;
    ensure!(
        diff <= SELF_CHECK,
        "the exported graph's logits differ from the network's by {diff:.2e} (more than {SELF_CHECK:e}): not written"
    );
    Ok(diff)
}
