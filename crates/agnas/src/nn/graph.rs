//! The inference graph of an evaluation network, for the exporters (ONNX, PyTorch).
//!
//! Every module of an evaluation network writes its own eval-mode forward into a [`Graph`] ([`Export`]), next to
//! the `forward_t` it trains with, so an export follows the network description rather than a trace. The graph
//! holds the modules' own tensors (shallow clones), so the exporters name them by the variable store and write the
//! trained values; [`Graph::eval`] runs the graph with libtorch, which is how the tests tie it to `forward_t`.
use super::init::BN_EPS;
use super::layers::ConvSpec;
use super::layers::{Conv2d, Linear};
use std::collections::HashMap;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The output of a node of a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(pub usize);

/// A primitive of the evaluation networks, in eval mode.
#[derive(Debug)]
pub enum Op {
    /// The network's input image batch (N, C, H, W).
    Input,
    Conv {
        weight: Tensor,
        bias: Option<Tensor>,
        spec: ConvSpec,
    },
    /// Normalisation with the running statistics; a BN without affine parameters has neither `weight` nor `bias`.
    BatchNorm {
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        mean: Tensor,
        var: Tensor,
    },
    Relu,
    Relu6,
    /// Average over the valid positions only unless `count_include_pad`.
    AvgPool {
        kernel: i64,
        stride: i64,
        padding: i64,
        count_include_pad: bool,
    },
    MaxPool {
        kernel: i64,
        stride: i64,
        padding: i64,
    },
    /// The sum of two inputs.
    Add,
    /// The input times a constant (`none` is `x · 0`).
    Scale(f64),
    /// `x[:, :, offset::step, offset::step]`.
    Subsample {
        offset: i64,
        step: i64,
    },
    /// Concatenation along the channels.
    Concat,
    /// Mean over height and width: (N, C, H, W) → (N, C).
    GlobalAvgPool,
    Linear {
        weight: Tensor,
        bias: Option<Tensor>,
    },
    /// Identity in eval mode; kept so that the PyTorch export trains as the network does.
    Dropout(f64),
}

#[derive(Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<Value>,
}

/// Nodes in execution order; node 0 is the input, the last node is the output.
#[derive(Debug)]
pub struct Graph {
    pub nodes: Vec<Node>,
}

/// A convolution with the batch norm that read it folded in: its new weight and bias, and the weight it replaces.
#[derive(Debug)]
pub struct Folded {
    pub weight: Tensor,
    pub bias: Tensor,
    pub replaces: Tensor,
}

/// A module that can write its eval-mode forward into a [`Graph`].
pub trait Export {
    fn export(&self, g: &mut Graph, x: Value) -> Value;
}

/// A trainable module that also exports: what cells hold when their ops are chosen at run time.
pub trait Layer: ModuleT + Export {}

impl<T: ModuleT + Export> Layer for T {}

impl Export for Box<dyn Layer> {
    fn export(&self, g: &mut Graph, x: Value) -> Value {
        self.as_ref().export(g, x)
    }
}

impl Graph {
    /// An empty graph and its input.
    pub fn new() -> (Graph, Value) {
        (Graph { nodes: vec![Node { op: Op::Input, inputs: vec![] }] }, Value(0))
    }

    pub fn push(&mut self, op: Op, inputs: &[Value]) -> Value {
        self.nodes.push(Node { op, inputs: inputs.to_vec() });
        Value(self.nodes.len() - 1)
    }

    pub fn output(&self) -> Value {
        Value(self.nodes.len() - 1)
    }

    pub fn conv(&mut self, conv: &Conv2d, x: Value) -> Value {
        let op = Op::Conv {
            weight: conv.ws.shallow_clone(),
            bias: conv.bs.as_ref().map(Tensor::shallow_clone),
            spec: conv.1,
        };
        self.push(op, &[x])
    }

    pub fn batch_norm(&mut self, bn: &nn::BatchNorm, x: Value) -> Value {
        let op = Op::BatchNorm {
            weight: bn.ws.as_ref().map(Tensor::shallow_clone),
            bias: bn.bs.as_ref().map(Tensor::shallow_clone),
            mean: bn.running_mean.shallow_clone(),
            var: bn.running_var.shallow_clone(),
        };
        self.push(op, &[x])
    }

    pub fn linear(&mut self, linear: &Linear, x: Value) -> Value {
        let op = Op::Linear { weight: linear.ws.shallow_clone(), bias: linear.bs.as_ref().map(Tensor::shallow_clone) };
        self.push(op, &[x])
    }

    pub fn relu(&mut self, x: Value) -> Value {
        self.push(Op::Relu, &[x])
    }

    pub fn relu6(&mut self, x: Value) -> Value {
        self.push(Op::Relu6, &[x])
    }

    /// The sum of `values` from left to right, as Python's `a + b + c`.
    pub fn sum(&mut self, values: &[Value]) -> Value {
        let (first, rest) = values.split_first().expect("a sum of at least one value");
        rest.iter().fold(*first, |acc, &v| self.push(Op::Add, &[acc, v]))
    }

    /// How many nodes read each value.
    pub fn readers(&self) -> Vec<usize> {
        let mut readers = vec![0; self.nodes.len()];
        for v in self.nodes.iter().flat_map(|n| &n.inputs) {
            readers[v.0] += 1;
        }
        readers
    }

    /// The same graph with every batch norm that is the only reader of a convolution folded into that convolution's
    /// weight and bias (ONNX's "inference with BN folded"), and what each folded convolution replaces.
    pub fn fold_batch_norms(&self) -> (Graph, Vec<Folded>) {
        let readers = self.readers();
        let mut foldable = vec![false; self.nodes.len()];
        for node in &self.nodes {
            if let (Op::BatchNorm { .. }, [conv]) = (&node.op, node.inputs.as_slice()) {
                foldable[conv.0] = matches!(self.nodes[conv.0].op, Op::Conv { .. }) && readers[conv.0] == 1;
            }
        }
        let mut out = Graph { nodes: Vec::with_capacity(self.nodes.len()) };
        let mut folds = Vec::new();
        let mut map = vec![Value(0); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if foldable[i] {
                // Written by the batch norm that reads it.
                continue;
            }
            map[i] = match (&node.op, node.inputs.as_slice()) {
                (Op::BatchNorm { weight: gamma, bias: beta, mean, var }, [conv]) if foldable[conv.0] => {
                    let conv_node = &self.nodes[conv.0];
                    let Op::Conv { weight, bias, spec } = &conv_node.op else { unreachable!("foldable is a conv") };
                    let scale = match gamma {
                        Some(gamma) => gamma / (var + BN_EPS).sqrt(),
                        None => (var + BN_EPS).sqrt().reciprocal(),
                    };
                    let shift = match bias {
                        Some(b) => (b - mean) * &scale,
                        None => -mean * &scale,
                    };
                    let fold = Folded {
                        weight: (weight * scale.view([-1, 1, 1, 1])).detach(),
                        bias: beta.as_ref().map_or(shift.shallow_clone(), |beta| shift + beta).detach(),
                        replaces: weight.shallow_clone(),
                    };
                    let op = Op::Conv {
                        weight: fold.weight.shallow_clone(),
                        bias: Some(fold.bias.shallow_clone()),
                        spec: ConvSpec { bias: true, ..*spec },
                    };
                    folds.push(fold);
                    out.push(op, &[map[conv_node.inputs[0].0]])
                }
                (op, inputs) => out.push(op.shallow_clone(), &inputs.iter().map(|v| map[v.0]).collect::<Vec<_>>()),
            };
        }
        (out, folds)
    }

    /// Runs the graph on `x` with libtorch, in eval mode.
    pub fn eval(&self, x: &Tensor) -> Tensor {
        let mut values: Vec<Option<Tensor>> = Vec::with_capacity(self.nodes.len());
        let mut readers = self.readers();
        for node in &self.nodes {
            let inputs: Vec<&Tensor> =
                node.inputs.iter().map(|v| values[v.0].as_ref().expect("a value is read before it is freed")).collect();
            let y = match &node.op {
                Op::Input => x.shallow_clone(),
                op => op.apply(&inputs),
            };
            values.push(Some(y));
            for v in &node.inputs {
                readers[v.0] -= 1;
                if readers[v.0] == 0 {
                    values[v.0] = None;
                }
            }
        }
        values.pop().flatten().expect("a graph has an output")
    }
}

impl Op {
    fn shallow_clone(&self) -> Op {
        let t = Tensor::shallow_clone;
        let opt = |o: &Option<Tensor>| o.as_ref().map(Tensor::shallow_clone);
        match self {
            Op::Input => Op::Input,
            Op::Conv { weight, bias, spec } => Op::Conv { weight: t(weight), bias: opt(bias), spec: *spec },
            Op::BatchNorm { weight, bias, mean, var } => {
                Op::BatchNorm { weight: opt(weight), bias: opt(bias), mean: t(mean), var: t(var) }
            }
            Op::Relu => Op::Relu,
            Op::Relu6 => Op::Relu6,
            &Op::AvgPool { kernel, stride, padding, count_include_pad } => {
                Op::AvgPool { kernel, stride, padding, count_include_pad }
            }
            &Op::MaxPool { kernel, stride, padding } => Op::MaxPool { kernel, stride, padding },
            Op::Add => Op::Add,
            &Op::Scale(s) => Op::Scale(s),
            &Op::Subsample { offset, step } => Op::Subsample { offset, step },
            Op::Concat => Op::Concat,
            Op::GlobalAvgPool => Op::GlobalAvgPool,
            Op::Linear { weight, bias } => Op::Linear { weight: t(weight), bias: opt(bias) },
            &Op::Dropout(p) => Op::Dropout(p),
        }
    }

    fn apply(&self, xs: &[&Tensor]) -> Tensor {
        let x = xs[0];
        match self {
            Op::Input => unreachable!("the input is not applied"),
            Op::Conv { weight, bias, spec } => {
                x.conv2d(weight, bias.as_ref(), [spec.stride; 2], [spec.padding; 2], [spec.dilation; 2], spec.groups)
            }
            Op::BatchNorm { weight, bias, mean, var } => {
                x.batch_norm(weight.as_ref(), bias.as_ref(), Some(mean), Some(var), false, 0.1, BN_EPS, false)
            }
            Op::Relu => x.relu(),
            Op::Relu6 => x.relu6(),
            &Op::AvgPool { kernel, stride, padding, count_include_pad } => {
                x.avg_pool2d([kernel; 2], [stride; 2], [padding; 2], false, count_include_pad, None::<i64>)
            }
            &Op::MaxPool { kernel, stride, padding } => {
                x.max_pool2d([kernel; 2], [stride; 2], [padding; 2], [1, 1], false)
            }
            Op::Add => x + xs[1],
            &Op::Scale(s) => x * s,
            &Op::Subsample { offset, step } => {
                x.slice(2, offset, None::<i64>, step).slice(3, offset, None::<i64>, step)
            }
            Op::Concat => Tensor::cat(xs, 1),
            Op::GlobalAvgPool => x.mean_dim([2i64, 3].as_slice(), false, x.kind()),
            Op::Linear { weight, bias } => x.linear(weight, bias.as_ref()),
            Op::Dropout(_) => x.shallow_clone(),
        }
    }
}

/// Names of the variables of `vs` by the address of their data, so that exporters name a graph's tensors as the
/// variable store (and PyTorch's `state_dict`) does.
pub fn tensor_names(vs: &nn::VarStore) -> HashMap<usize, String> {
    vs.variables().into_iter().map(|(name, t)| (t.data_ptr() as usize, name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::init::{batch_norm2d, conv2d};
    use tch::{Device, Kind};

    #[test]
    fn folding_removes_the_batch_norms_after_convolutions_and_keeps_the_values() {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = conv2d(&vs.root() / "c", 3, 4, 3, ConvSpec::default().padding(1));
        let bn = batch_norm2d(&vs.root() / "bn", 4, true);
        let shared = batch_norm2d(&vs.root() / "shared", 4, false);
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.dim() == 1 {
                    t.copy_(&(Tensor::rand([4], (Kind::Float, Device::Cpu)) + 0.5));
                }
            }
        });
        let (mut g, x) = Graph::new();
        let c = g.conv(&conv, x);
        let b = g.batch_norm(&bn, c);
        let r = g.relu(b);
        // A batch norm after a sum stays.
        let sum = g.sum(&[r, b]);
        g.batch_norm(&shared, sum);
        let (folded, folds) = g.fold_batch_norms();
        let norms = |g: &Graph| g.nodes.iter().filter(|n| matches!(n.op, Op::BatchNorm { .. })).count();
        assert_eq!((norms(&g), norms(&folded), folds.len()), (2, 1, 1));
        assert_eq!(folded.nodes.len(), g.nodes.len() - 1);
        let input = Tensor::randn([2, 3, 5, 5], (Kind::Float, Device::Cpu));
        let diff = (g.eval(&input) - folded.eval(&input)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }
}
