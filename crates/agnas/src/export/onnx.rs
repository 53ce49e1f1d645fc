//! A [`Graph`] as a standard ONNX model (opset 17), with the messages of the `onnx-protobuf` crate.
//!
//! Every primitive maps onto one or two standard operators (Conv, BatchNormalization, Relu, Clip, AveragePool,
//! MaxPool, Add, Mul, Slice, Concat, GlobalAveragePool + Flatten, Gemm); dropout is the identity in inference and
//! is left out. Initializers carry the variable store's names (PyTorch's `state_dict` keys).
use super::{Names, Shape};
use crate::error::{ensure, Result};
use crate::nn::graph::{Graph, Op, Value};
use crate::nn::init::BN_EPS;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::type_proto;
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use std::collections::HashMap;
use tch::{Kind, Tensor};

pub const OPSET: i64 = 17;
/// The IR version that opset 17 came with (ONNX 1.12).
const IR_VERSION: i64 = 8;
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "logits";

/// How the model is written.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// A fixed batch size; `None` writes a symbolic batch dimension `N`.
    pub batch: Option<i64>,
    /// Batch norms that follow a convolution are folded into it; the others stay BatchNormalization.
    pub fold_batch_norms: bool,
    pub doc: String,
}

/// The serialised model.
pub fn model(graph: &Graph, names: &Names, input: Shape, options: &OnnxOptions) -> Result<Vec<u8>> {
    let (folded, names) = if options.fold_batch_norms {
        let (g, folds) = graph.fold_batch_norms();
        let mut names = names.clone();
        for fold in folds {
            if let Some(name) = names.get(&(fold.replaces.data_ptr() as usize)).cloned() {
                let module = name.strip_suffix(".weight").unwrap_or(&name).to_string();
                names.insert(fold.weight.data_ptr() as usize, name);
                names.insert(fold.bias.data_ptr() as usize, format!("{module}.bias"));
            }
        }
        (Some(g), names)
    } else {
        (None, names.clone())
    };
    let graph = folded.as_ref().unwrap_or(graph);
    let mut w = Writer { names: &names, onnx: GraphProto::new(), written: HashMap::new(), value_names: Vec::new() };
    for (i, node) in graph.nodes.iter().enumerate() {
        let name = w.node(i, &node.op, &node.inputs)?;
        w.value_names.push(name);
    }
    let output = w.value_names[graph.output().0].clone();
    let classes = graph
        .nodes
        .iter()
        .rev()
        .find_map(|n| match &n.op {
            Op::Linear { weight, .. } => Some(weight.size()[0]),
            _ => None,
        })
        .unwrap_or(0);
    ensure!(classes > 0, "the network has no classifier to export");
    let mut onnx = w.onnx;
    let batch = options.batch;
    onnx.name = "agnas".into();
    onnx.input.push(value_info(INPUT, &[batch, Some(input.channels), Some(input.height), Some(input.width)]));
    onnx.output.push(value_info(&output, &[batch, Some(classes)]));
    onnx.doc_string = options.doc.clone();
    let mut model = ModelProto::new();
    model.ir_version = IR_VERSION;
    model.producer_name = "agnas".into();
    model.producer_version = env!("CARGO_PKG_VERSION").into();
    model.doc_string = options.doc.clone();
    let mut opset = OperatorSetIdProto::new();
    opset.version = OPSET;
    model.opset_import.push(opset);
    model.graph = protobuf::MessageField::some(onnx);
    Ok(model.write_to_bytes()?)
}

struct Writer<'a> {
    names: &'a Names,
    onnx: GraphProto,
    /// Initializers already written, by tensor address.
    written: HashMap<usize, String>,
    /// The ONNX name of each graph value.
    value_names: Vec<String>,
}

impl Writer<'_> {
    /// Writes one node and returns the name of its output.
    fn node(&mut self, i: usize, op: &Op, inputs: &[Value]) -> Result<String> {
        let mut ins: Vec<String> = inputs.iter().map(|v| self.value_names[v.0].clone()).collect();
        let out = format!("v{i}");
        let (op_type, attributes) = match op {
            Op::Input => return Ok(INPUT.into()),
            Op::Dropout(_) => return Ok(ins.remove(0)),
            Op::Conv { weight, bias, spec } => {
                ins.push(self.tensor(weight, "weight")?);
                if let Some(b) = bias {
                    ins.push(self.tensor(b, "bias")?);
                }
                let size = weight.size();
                let p = spec.padding;
                let attrs = vec![
                    ints("kernel_shape", &size[2..]),
                    ints("strides", &[spec.stride; 2]),
                    ints("pads", &[p; 4]),
                    ints("dilations", &[spec.dilation; 2]),
                    int("group", spec.groups),
                ];
                ("Conv", attrs)
            }
            Op::BatchNorm { weight, bias, mean, var } => {
                let c = mean.size()[0];
                let ones = Tensor::ones([c], (Kind::Float, tch::Device::Cpu));
                let zeros = Tensor::zeros([c], (Kind::Float, tch::Device::Cpu));
                let scale = match weight {
                    Some(t) => self.tensor(t, "weight")?,
                    None => self.constant(&format!("v{i}.scale"), &ones)?,
                };
                let shift = match bias {
                    Some(t) => self.tensor(t, "bias")?,
                    None => self.constant(&format!("v{i}.shift"), &zeros)?,
                };
                ins.extend([scale, shift, self.tensor(mean, "running_mean")?, self.tensor(var, "running_var")?]);
                ("BatchNormalization", vec![float("epsilon", BN_EPS as f32)])
            }
            Op::Relu => ("Relu", vec![]),
            Op::Relu6 => {
                ins.push(self.scalar("relu6.min", 0.0)?);
                ins.push(self.scalar("relu6.max", 6.0)?);
                ("Clip", vec![])
            }
            &Op::AvgPool { kernel, stride, padding, count_include_pad } => {
                let mut attrs = pool_attributes(kernel, stride, padding);
                attrs.push(int("count_include_pad", count_include_pad as i64));
                ("AveragePool", attrs)
            }
            &Op::MaxPool { kernel, stride, padding } => ("MaxPool", pool_attributes(kernel, stride, padding)),
            Op::Add => ("Add", vec![]),
            &Op::Scale(s) => {
                ins.push(self.scalar(&format!("scale.{s}"), s as f32)?);
                ("Mul", vec![])
            }
            &Op::Subsample { offset, step } => {
                let key = format!("subsample.{offset}.{step}");
                ins.push(self.ints_constant(&format!("{key}.starts"), &[offset, offset])?);
                ins.push(self.ints_constant(&format!("{key}.ends"), &[i64::MAX, i64::MAX])?);
                ins.push(self.ints_constant("subsample.axes", &[2, 3])?);
                ins.push(self.ints_constant(&format!("{key}.steps"), &[step, step])?);
                ("Slice", vec![])
            }
            Op::Concat => ("Concat", vec![int("axis", 1)]),
            Op::GlobalAvgPool => {
                let pooled = format!("v{i}.pooled");
                self.push("GlobalAveragePool", ins, vec![pooled.clone()], vec![]);
                self.push("Flatten", vec![pooled], vec![out.clone()], vec![int("axis", 1)]);
                return Ok(out);
            }
            Op::Linear { weight, bias } => {
                ins.push(self.tensor(weight, "weight")?);
                if let Some(b) = bias {
                    ins.push(self.tensor(b, "bias")?);
                }
                ("Gemm", vec![int("transB", 1)])
            }
        };
        self.push(op_type, ins, vec![out.clone()], attributes);
        Ok(out)
    }

    fn push(&mut self, op_type: &str, input: Vec<String>, output: Vec<String>, attribute: Vec<AttributeProto>) {
        let mut node = NodeProto::new();
        node.name = format!("{op_type}_{}", self.onnx.node.len());
        node.op_type = op_type.into();
        node.input = input;
        node.output = output;
        node.attribute = attribute;
        self.onnx.node.push(node);
    }

    /// A tensor of the network as an initializer named as in the variable store, written once.
    fn tensor(&mut self, t: &Tensor, what: &str) -> Result<String> {
        let key = t.data_ptr() as usize;
        if let Some(name) = self.written.get(&key) {
            return Ok(name.clone());
        }
        let name = match self.names.get(&key) {
            Some(name) => name.clone(),
            None => format!("unnamed.{}.{what}", self.written.len()),
        };
        self.onnx.initializer.push(float_tensor(&name, t)?);
        self.written.insert(key, name.clone());
        Ok(name)
    }

    /// A constant of the export itself, written once under `name`.
    fn constant(&mut self, name: &str, t: &Tensor) -> Result<String> {
        if !self.onnx.initializer.iter().any(|i| i.name == name) {
            self.onnx.initializer.push(float_tensor(name, t)?);
        }
        Ok(name.into())
    }

    fn scalar(&mut self, name: &str, value: f32) -> Result<String> {
        self.constant(name, &Tensor::from(value))
    }

    fn ints_constant(&mut self, name: &str, values: &[i64]) -> Result<String> {
        if !self.onnx.initializer.iter().any(|i| i.name == name) {
            let mut t = TensorProto::new();
            t.name = name.into();
            t.data_type = DataType::INT64 as i32;
            t.dims = vec![values.len() as i64];
            t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.onnx.initializer.push(t);
        }
        Ok(name.into())
    }
}

fn float_tensor(name: &str, t: &Tensor) -> Result<TensorProto> {
    let host = t.detach().to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
    let values = Vec::<f32>::try_from(host.flatten(0, -1))?;
    let mut proto = TensorProto::new();
    proto.name = name.into();
    proto.data_type = DataType::FLOAT as i32;
    proto.dims = host.size();
    proto.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(proto)
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| {
            let mut dim = Dimension::new();
            dim.value = Some(match d {
                Some(n) => dimension::Value::DimValue(*n),
                None => dimension::Value::DimParam("N".into()),
            });
            dim
        })
        .collect();
    let mut shape = TensorShapeProto::new();
    shape.dim = dim;
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = protobuf::MessageField::some(shape);
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut info = ValueInfoProto::new();
    info.name = name.into();
    info.type_ = protobuf::MessageField::some(ty);
    info
}

fn pool_attributes(kernel: i64, stride: i64, padding: i64) -> Vec<AttributeProto> {
    vec![ints("kernel_shape", &[kernel; 2]), ints("strides", &[stride; 2]), ints("pads", &[padding; 4])]
}

fn attribute(name: &str, kind: AttributeType) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = kind.into();
    a
}

fn int(name: &str, value: i64) -> AttributeProto {
    let mut a = attribute(name, AttributeType::INT);
    a.i = value;
    a
}

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = attribute(name, AttributeType::INTS);
    a.ints = values.to_vec();
    a
}

fn float(name: &str, value: f32) -> AttributeProto {
    let mut a = attribute(name, AttributeType::FLOAT);
    a.f = value;
    a
}
