//! A [`Graph`] as one standalone Python file of plain `torch.nn` modules, and its weights under the same names.
//!
//! The modules sit at the variable store's paths (`cells.3._ops.1.op.2`), so the weights agnas saved load into
//! them by name and the file's `state_dict` is the network's own. The forward is the graph's straight-line code;
//! dropout stays (`F.dropout(…, self.training)`), so the module trains as well as it infers.
use super::{Names, Shape};
use crate::error::Result;
use crate::nn::graph::{Graph, Op};
use std::fmt::Write;
use tch::{Kind, Tensor};

/// The Python source and the tensors to save beside it (with a `num_batches_tracked` per batch norm, so that
/// `load_state_dict` accepts the file strictly).
pub fn module(graph: &Graph, names: &Names, input: Shape, doc: &str) -> Result<(String, Vec<(String, Tensor)>)> {
    let name_of = |t: &Tensor| {
        names
            .get(&(t.data_ptr() as usize))
            .cloned()
            .ok_or_else(|| crate::Error::Message("a tensor of the network has no name".into()))
    };
    let mut modules = String::new();
    let mut forward = String::new();
    let mut state: Vec<(String, Tensor)> = Vec::new();
    let mut readers = graph.readers();
    let var = |i: usize| if i == 0 { "x".to_string() } else { format!("v{i}") };
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let ins: Vec<String> = node.inputs.iter().map(|v| var(v.0)).collect();
        let x = &ins[0];
        let expr = match &node.op {
            Op::Input => unreachable!("only node 0 is the input"),
            Op::Conv { weight, bias, spec } => {
                let path = module_path(&name_of(weight)?, "weight");
                let size = weight.size();
                let mut args = format!("{}, {}, {}", size[1] * spec.groups, size[0], size[2]);
                for (key, value, default) in [
                    ("stride", spec.stride, 1),
                    ("padding", spec.padding, 0),
                    ("dilation", spec.dilation, 1),
                    ("groups", spec.groups, 1),
                ] {
                    if value != default {
                        write!(args, ", {key}={value}")?;
                    }
                }
                if bias.is_none() {
                    args.push_str(", bias=False");
                }
                declare(&mut modules, &path, &format!("nn.Conv2d({args})"))?;
                state.push((format!("{path}.weight"), weight.shallow_clone()));
                if let Some(b) = bias {
                    state.push((format!("{path}.bias"), b.shallow_clone()));
                }
                format!("m({path:?})({x})")
            }
            Op::BatchNorm { weight, bias, mean, var } => {
                let path = module_path(&name_of(mean)?, "running_mean");
                let affine = if weight.is_some() { "" } else { ", affine=False" };
                declare(&mut modules, &path, &format!("nn.BatchNorm2d({}{affine})", mean.size()[0]))?;
                let named = [
                    ("weight", weight.as_ref()),
                    ("bias", bias.as_ref()),
                    ("running_mean", Some(mean)),
                    ("running_var", Some(var)),
                ];
                for (key, t) in named {
                    if let Some(t) = t {
                        state.push((format!("{path}.{key}"), t.shallow_clone()));
                    }
                }
                state.push((format!("{path}.num_batches_tracked"), Tensor::from(0i64).to_kind(Kind::Int64)));
                format!("m({path:?})({x})")
            }
            Op::Linear { weight, bias } => {
                let path = module_path(&name_of(weight)?, "weight");
                let size = weight.size();
                let no_bias = if bias.is_none() { ", bias=False" } else { "" };
                declare(&mut modules, &path, &format!("nn.Linear({}, {}{no_bias})", size[1], size[0]))?;
                state.push((format!("{path}.weight"), weight.shallow_clone()));
                if let Some(b) = bias {
                    state.push((format!("{path}.bias"), b.shallow_clone()));
                }
                format!("m({path:?})({x})")
            }
            Op::Relu => format!("F.relu({x})"),
            Op::Relu6 => format!("F.relu6({x})"),
            Op::AvgPool { kernel, stride, padding, count_include_pad } => {
                let include = if *count_include_pad { "True" } else { "False" };
                format!("F.avg_pool2d({x}, {kernel}, {stride}, {padding}, count_include_pad={include})")
            }
            Op::MaxPool { kernel, stride, padding } => format!("F.max_pool2d({x}, {kernel}, {stride}, {padding})"),
            Op::Add => format!("{x} + {}", ins[1]),
            Op::Scale(s) => format!("{x} * {s:?}"),
            Op::Subsample { offset, step } => {
                let slice = match (offset, step) {
                    (0, s) => format!("::{s}"),
                    (o, 1) => format!("{o}:"),
                    (o, s) => format!("{o}::{s}"),
                };
                format!("{x}[:, :, {slice}, {slice}]")
            }
            Op::Concat => format!("torch.cat([{}], 1)", ins.join(", ")),
            Op::GlobalAvgPool => format!("{x}.mean((2, 3))"),
            Op::Dropout(p) => format!("F.dropout({x}, {p:?}, self.training)"),
        };
        writeln!(forward, "        {} = {expr}", var(i))?;
        // Locals that no later line reads are dropped, so inference keeps one cell's activations, not all.
        let done: Vec<String> = node
            .inputs
            .iter()
            .filter_map(|v| {
                readers[v.0] -= 1;
                (readers[v.0] == 0).then(|| var(v.0))
            })
            .collect();
        if !done.is_empty() {
            writeln!(forward, "        del {}", done.join(", "))?;
        }
    }
    writeln!(forward, "        return {}", var(graph.output().0))?;
    Ok((source(doc, input, &modules, &forward), state))
}

/// `cells.0.op.1` of `cells.0.op.1.weight`.
fn module_path(name: &str, leaf: &str) -> String {
    name.strip_suffix(&format!(".{leaf}")).unwrap_or(name).to_string()
}

fn declare(out: &mut String, path: &str, module: &str) -> std::fmt::Result {
    writeln!(out, "        self._add({path:?}, {module})")
}

fn source(doc: &str, input: Shape, modules: &str, forward: &str) -> String {
    let Shape { channels, height, width } = input;
    format!(
        r#""""{doc}

Written by agnas {version}: plain torch.nn modules, no agnas import. The module names are the network's state_dict
keys, so `load()` reads the weights saved beside this file. The forward is the evaluation network's (drop-path and
any auxiliary head are training aids of the recipe and are not part of it). Input: (N, {channels}, {height}, {width}).
"""
import os

import torch
import torch.nn.functional as F
from torch import nn


class Network(nn.Module):
    def __init__(self):
        super().__init__()
{modules}
    def _add(self, path, module):
        parent = self
        *parents, leaf = path.split(".")
        for part in parents:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, module)

    def forward(self, x):
        m = self.get_submodule
{forward}

def load(weights=None):
    """The network with the weights saved beside this file (or those of `weights`), in eval mode."""
    from safetensors.torch import load_file

    net = Network()
    net.load_state_dict(load_file(weights or os.path.splitext(__file__)[0] + ".safetensors"))
    return net.eval()


if __name__ == "__main__":
    print(load()(torch.randn(2, {channels}, {height}, {width})).shape)
"#,
        version = env!("CARGO_PKG_VERSION"),
    )
}
