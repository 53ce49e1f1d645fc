//! `agnas export`: a retrained network (or a genotype's network with fresh weights) as ONNX or PyTorch.
use crate::models::GenotypeNetworkArgs;
use agnas::export::{self, Format, OnnxOptions, Shape};
use agnas::registry::resolve::{resolve, Source};
use agnas::registry::{self, AnySpace};
use agnas::retrain::{Images, Network, NetworkSource, Weights};
use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// A standard ONNX model (opset 17).
    Onnx,
    /// One standalone Python file of torch.nn modules, and the weights beside it as .safetensors.
    Pytorch,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A finished `agnas train` run folder, or a weights .safetensors file (PyTorch names; then give --genotype).
    /// Without it, the genotype's network with fresh weights (--seed).
    #[arg(long, alias = "checkpoint")]
    run: Option<PathBuf>,
    /// What to write.
    #[arg(long, alias = "format", value_enum, default_value = "onnx")]
    to: ExportFormat,
    /// The file to write (`.onnx`, or `.py` with the weights as `.safetensors` beside it). Default: `model.onnx` or
    /// `model.py` in the run folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace files that exist.
    #[arg(long)]
    force: bool,
    /// For a weights file or fresh weights: the genotype and its network.
    #[command(flatten)]
    pub(crate) of: GenotypeNetworkArgs,
    /// ONNX: a fixed batch size (default: a dynamic batch dimension `N`).
    #[arg(long, alias = "batch")]
    batch_size: Option<i64>,
    /// ONNX: fold each batch norm that follows a convolution into it (default: BatchNormalization nodes).
    #[arg(long)]
    fold_bn: bool,
    /// Seed of fresh weights.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

impl ExportArgs {
    fn out(&self) -> Result<PathBuf> {
        let name = match self.to {
            ExportFormat::Onnx => "model.onnx",
            ExportFormat::Pytorch => "model.py",
        };
        match (&self.out, &self.run) {
            (Some(out), _) => Ok(out.clone()),
            (None, Some(dir)) if dir.is_dir() => Ok(dir.join(name)),
            _ => bail!("give --out (the file to write; a run folder's export defaults to {name} in it)"),
        }
    }

    fn format(&self) -> Result<Format> {
        Ok(match self.to {
            ExportFormat::Onnx => {
                ensure!(self.batch_size.is_none_or(|b| b >= 1), "--batch-size must be at least 1");
                Format::Onnx(OnnxOptions { batch: self.batch_size, fold_batch_norms: self.fold_bn, doc: String::new() })
            }
            ExportFormat::Pytorch => {
                ensure!(self.batch_size.is_none() && !self.fold_bn, "--batch-size and --fold-bn are ONNX options");
                Format::PyTorch
            }
        })
    }
}

/// Writes the network of `args` in the space `space`.
fn write(args: &ExportArgs, space: &dyn AnySpace) -> Result<()> {
    let format = args.format()?;
    let out = args.out()?;
    crate::refuse_overwrite(&written(&out, &format), args.force)?;
    crate::create_parent(&out)?;
    let paper = |genotype, weights| NetworkSource::Paper {
        genotype,
        shape: &args.of.network.given,
        weights,
        images: Images::Reference { num_classes: args.of.num_classes },
    };
    let source = match (&args.run, &args.of.genotype) {
        (Some(dir), _) if dir.is_dir() => NetworkSource::Run(dir),
        (Some(weights), Some(spec)) => paper(spec, Weights::File(weights)),
        (Some(weights), None) => {
            bail!("{} is a weights file: give --genotype (and the network shape if not the paper's)", weights.display())
        }
        (None, spec) => {
            let spec = spec.as_deref().context("give --run (a run folder or weights) or --genotype")?;
            paper(spec, Weights::Fresh { seed: args.seed })
        }
    };
    let network = space.network(source, tch::Device::Cpu)?;
    let side =
        args.of.image_size.unwrap_or(if network.crop > 0 { network.crop as i64 } else { space.reference_input().0 });
    ensure!(side >= 1, "--image-size must be at least 1");
    let input = Shape { channels: network.in_channels, height: side, width: side };
    let started = Instant::now();
    let written = export::write(network.net.as_ref(), &network.vs, input, &format, &out, &doc(space, &network))?;
    let files: Vec<String> = written.files.iter().map(|f| f.display().to_string()).collect();
    outln!(
        "{}",
        serde_json::json!({
            "files": files,
            "bytes": written.bytes,
            "seconds": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            "graph_max_abs_diff": written.graph_max_abs_diff,
        })
    );
    Ok(())
}

/// What the exported files say about the network: space, genotype, classes, input and its normalisation.
fn doc(space: &dyn AnySpace, network: &Network) -> String {
    let n = &network.normalization;
    format!(
        "The {} evaluation network of {}, {} classes.\nInput images normalised with mean {:?} and std {:?}.",
        space.name(),
        network.genotype_text.trim(),
        network.num_classes,
        n.mean,
        n.std
    )
}

/// The files an export writes.
fn written(out: &Path, format: &Format) -> Vec<PathBuf> {
    let mut files = vec![out.to_path_buf()];
    if matches!(format, Format::PyTorch) {
        files.push(out.with_extension("safetensors"));
    }
    files
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let space = match &args.run {
        Some(dir) if dir.is_dir() => {
            ensure!(
                !args.of.any(),
                "--space, --genotype and the network shape are for a weights file or fresh weights; a run folder's \
                 model.json decides them"
            );
            registry::space(resolve(Source::Model(dir), None)?)
        }
        Some(weights) => {
            ensure!(weights.exists(), agnas::Error::Missing { path: weights.clone() });
            args.of.space()?
        }
        None => args.of.space()?,
    };
    write(args, space)
}
