//! The library's typed errors: what went wrong with a configuration, data, a checkpoint, a genotype or a run.
//! Functions that only pass these on, with context, return `anyhow::Result`.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown space `{name}` (available: {known})")]
    UnknownSpace { name: String, known: String },
    #[error("{what} is {is}, not {not} (--space {not}){hint}")]
    WrongSpace { what: String, is: String, not: String, hint: String },
    #[error("config {source_name}: {message}")]
    Config { source_name: String, message: String },
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("genotype {source_name}: {message}")]
    Genotype { source_name: String, message: String },
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("importances: {0}")]
    Importances(String),
    #[error("non-finite attention ({value} at {at})")]
    NonFiniteAttention { value: f64, at: String },
    #[error(
        "the held-out pass produced non-finite attention: the supernet diverged (held-out loss {loss}); lower --lr \
         ({detail}); no result was written"
    )]
    HeldOutDiverged { loss: f64, detail: String },
}
