//! The DARTS space (spec §2.1): 14-edge cells with 8 candidate ops; one genotype per supernet cell.
pub mod derive;
pub mod genotype;
pub mod network;
pub mod supernet;

pub use genotype::{CellGenotype, CellKind, DartsOp, Genotype};
pub use network::{NetworkCifar, NetworkConfig};
pub use supernet::{DartsConfig, DartsSupernet};

use crate::nn::ops::{DilConv, FactorizedReduce, Identity, Pool, PoolKind, SepConv, Zero};
use tch::nn::{self, ModuleT};

/// One op as the DARTS code base builds it (`OPS[name](C, stride, affine)`); a strided skip is a FactorizedReduce.
fn op(p: nn::Path, o: DartsOp, c: i64, stride: i64, affine: bool) -> Box<dyn ModuleT> {
    match o {
        DartsOp::SepConv3x3 => Box::new(SepConv::new(p, c, c, 3, stride, affine)),
        DartsOp::SepConv5x5 => Box::new(SepConv::new(p, c, c, 5, stride, affine)),
        DartsOp::DilConv3x3 => Box::new(DilConv::new(p, c, c, 3, stride, 2, affine)),
        DartsOp::DilConv5x5 => Box::new(DilConv::new(p, c, c, 5, stride, 2, affine)),
        DartsOp::SkipConnect if stride == 1 => Box::new(Identity),
        DartsOp::SkipConnect => Box::new(FactorizedReduce::new(p, c, c, affine)),
        DartsOp::AvgPool3x3 => Box::new(Pool { kind: PoolKind::Avg, stride }),
        DartsOp::MaxPool3x3 => Box::new(Pool { kind: PoolKind::Max, stride }),
        DartsOp::None => Box::new(Zero { stride }),
    }
}
