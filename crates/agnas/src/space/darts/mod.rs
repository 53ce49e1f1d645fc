//! The DARTS space (spec §2.1): 14-edge cells with 8 candidate ops; one genotype per supernet cell.
pub mod genotype;

pub use genotype::{CellGenotype, CellKind, DartsOp, Genotype};
