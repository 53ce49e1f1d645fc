//! The benchmark's CIFAR skeleton, shared by the supernet and the evaluation network: stem (conv 3×3 + BN) →
//! N cells (C) → ResNet block, stride 2 → N cells (2C) → ResNet block → N cells (4C) → BN-ReLU → global average
//! pool → linear classifier. Cells and the two blocks share one list, `cells.<i>`, as in the benchmark's code.
use crate::nn::graph::{Export, Graph, Op, Value};
use crate::nn::init::{batch_norm2d, conv2d, linear};
use crate::nn::layers::ConvSpec;
use crate::nn::layers::{Conv2d, Linear};
use crate::nn::ops::ResNetBasicBlock;
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug)]
enum Layer<C> {
    Cell(C),
    Reduction(Box<ResNetBasicBlock>),
}

#[derive(Debug)]
pub struct Skeleton<C> {
    stem_conv: Conv2d,
    stem_bn: nn::BatchNorm,
    layers: Vec<Layer<C>>,
    last_bn: nn::BatchNorm,
    classifier: Linear,
}

impl<C> Skeleton<C> {
    /// `cell(path, channels)` builds each cell. The variables are created in the benchmark's order (the cells and
    /// blocks, then stem, last BN and classifier), so a seed gives the same initial weights as before.
    pub fn new(
        p: &nn::Path,
        channels: i64,
        cells_per_stage: i64,
        in_channels: i64,
        num_classes: i64,
        mut cell: impl FnMut(nn::Path, i64) -> C,
    ) -> Self {
        let cells = p / "cells";
        let mut layers = Vec::new();
        let mut c_prev = channels;
        for stage in 0..3 {
            let c_stage = channels << stage;
            if stage > 0 {
                let block = ResNetBasicBlock::new(&cells / layers.len(), c_prev, c_stage, 2);
                layers.push(Layer::Reduction(Box::new(block)));
            }
            for _ in 0..cells_per_stage {
                layers.push(Layer::Cell(cell(&cells / layers.len(), c_stage)));
            }
            c_prev = c_stage;
        }
        let stem = p / "stem";
        Skeleton {
            stem_conv: conv2d(&stem / "0", in_channels, channels, 3, ConvSpec::default().padding(1)),
            stem_bn: batch_norm2d(&stem / "1", channels, true),
            layers,
            last_bn: batch_norm2d(p / "lastact" / "0", c_prev, true),
            classifier: linear(p / "classifier", c_prev, num_classes, true),
        }
    }

    /// Logits; `cell(cell, input)` runs each cell.
    pub fn forward_t(&self, xs: &Tensor, train: bool, mut cell: impl FnMut(&C, &Tensor) -> Tensor) -> Tensor {
        let mut h = xs.apply(&self.stem_conv).apply_t(&self.stem_bn, train);
        for layer in &self.layers {
            h = match layer {
                Layer::Cell(c) => cell(c, &h),
                Layer::Reduction(block) => block.forward_t(&h, train),
            };
        }
        let pooled = h.apply_t(&self.last_bn, train).relu().mean_dim([2i64, 3].as_slice(), false, h.kind());
        pooled.apply(&self.classifier)
    }

    /// The eval-mode graph; `cell(cell, graph, input)` exports each cell.
    pub fn export(&self, g: &mut Graph, x: Value, mut cell: impl FnMut(&C, &mut Graph, Value) -> Value) -> Value {
        let stem = g.conv(&self.stem_conv, x);
        let mut h = g.batch_norm(&self.stem_bn, stem);
        for layer in &self.layers {
            h = match layer {
                Layer::Cell(c) => cell(c, g, h),
                Layer::Reduction(block) => block.export(g, h),
            };
        }
        let last = g.batch_norm(&self.last_bn, h);
        let last = g.relu(last);
        let pooled = g.push(Op::GlobalAvgPool, &[last]);
        g.linear(&self.classifier, pooled)
    }
}
