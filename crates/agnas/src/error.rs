//! The library's typed errors: what went wrong with a configuration, data, a checkpoint, a genotype or a run.
//! Functions that only pass these on, with context, return `anyhow::Result`.
use std::path::PathBuf;

/// Why a weights file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WeightsCause {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error("not a safetensors header: {0}")]
    Header(#[from] serde_json::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown space `{name}` (available: {known})")]
    UnknownSpace { name: String, known: String },
    #[error("{what} is {is}, not {not} (--space {not}){hint}")]
    WrongSpace { what: String, is: String, not: String, hint: String },
    #[error("config {source_name}: {message}")]
    Config { source_name: String, message: String },
    /// A key the configuration does not have, given by `source_name` (a flag, `--set`).
    #[error("config {source_name}: {message}")]
    UnknownKey { source_name: String, key: String, message: String },
    #[error("config {}: reading", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {}", path.display())]
    ConfigParse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("{} already holds a run ({existing} exists): use --resume {} or another --out", path.display(), path.display())]
    RunBusy { path: PathBuf, existing: String },
    #[error("reading weights {} (is it truncated, or not a safetensors file?)", path.display())]
    CorruptWeights {
        path: PathBuf,
        #[source]
        source: WeightsCause,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{layered, Overrides, Preset};
    use crate::registry::resolve::{resolve, Source};
    use crate::space::{nb201::Nb201, Space, SpaceName};
    use std::error::Error as _;

    fn typed(err: &anyhow::Error) -> &Error {
        err.downcast_ref::<Error>().unwrap_or_else(|| panic!("not a typed error: {err:#}"))
    }

    /// A caller can tell the kinds apart, and the io, toml and weights causes are kept as sources.
    #[test]
    fn callers_can_match_the_kinds_and_reach_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        match crate::config::read_toml(&missing).unwrap_err() {
            Error::ConfigRead { path, source } => {
                assert_eq!((path, source.kind()), (missing, std::io::ErrorKind::NotFound));
            }
            other => panic!("{other}"),
        }
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "x = \n").unwrap();
        let err = crate::config::read_toml(&bad).unwrap_err();
        assert!(matches!(err, Error::ConfigParse { .. }) && err.source().is_some(), "{err}");

        let mut flags = Overrides::default();
        flags.set("supernet.layers", "--layers", 6);
        let err = layered(Nb201::search_preset(Preset::Smoke), None, &flags).unwrap_err();
        assert!(matches!(typed(&err), Error::UnknownKey { key, .. } if key == "supernet.layers"), "{err:#}");

        std::fs::write(dir.path().join("config.toml"), "space = \"nb201\"\n").unwrap();
        let err = resolve(Source::Run(dir.path()), Some(SpaceName::Darts)).unwrap_err();
        assert!(matches!(typed(&err), Error::WrongSpace { is, not, .. } if is == "nb201" && not == "darts"));
        let err = crate::report::claim_run_folder(dir.path(), "").unwrap_err();
        assert!(matches!(typed(&err), Error::RunBusy { existing, .. } if existing == "config.toml"), "{err:#}");

        let weights = dir.path().join("w.safetensors");
        std::fs::write(&weights, b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let err = crate::nn::weights::load(&vs, &weights).unwrap_err();
        match typed(&err) {
            Error::CorruptWeights { path, source } => {
                assert!(path == &weights && matches!(source, WeightsCause::Torch(_)))
            }
            other => panic!("{other}"),
        }
        let err = crate::nn::weights::names(&weights).unwrap_err();
        assert!(matches!(typed(&err), Error::CorruptWeights { source: WeightsCause::Io(_), .. }), "{err:#}");
    }
}
