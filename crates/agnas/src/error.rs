//! The library's errors: what went wrong with a configuration, data, a checkpoint, a genotype, a run or its peers.
//!
//! Every fallible function of the library returns [`Result`]. A caller matches the kind behind any context that was
//! added on the way up with [`Error::kind`]; the causes stay reachable through [`std::error::Error::source`], so that
//! `anyhow`'s `{:#}` prints the same chain (`context: ...: cause`) as before these were typed. Inside the crate,
//! `error::{Context, bail, ensure}` read as their `anyhow` namesakes.
use std::fmt::Display;
use std::path::PathBuf;

use crate::data::folder::MixedSizes;
use crate::dist::DistError;
use crate::space::darts::python::ParseError;
use crate::space::nb201::{arch::UnknownOpError, bench::QueryError};
use crate::space::proxyless::select::SelectError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// What went wrong; [`Error::kind`] is the one to match, behind the contexts:
///
/// ```no_run
/// use agnas::{dist::DistError, Error};
///
/// if let Err(e) = agnas::report::claim_run_folder("runs/a".as_ref(), "") {
///     match e.kind() {
///         Error::RunBusy { path, .. } => eprintln!("{} holds a run already", path.display()),
///         Error::Dist(DistError::Collective { rank, .. } | DistError::Root { root: rank, .. }) => {
///             eprintln!("rank {rank} failed")
///         }
///         _ => eprintln!("{}", e.report()),
///     }
/// }
/// ```
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
    /// The images of a set that must have one size do not.
    #[error(transparent)]
    MixedSizes(#[from] MixedSizes),
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
    /// A peer failed or could not be reached, or the ranks disagree (data-parallel runs).
    #[error(transparent)]
    Dist(#[from] DistError),
    /// A failure without a kind of its own (what `bail!` and `ensure!` say).
    #[error("{0}")]
    Message(String),
    /// `source`, with what was being done when it happened; displays only `context`, as the cause follows in the chain.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
    // The failures of other crates and of the library's own parsers, passed on as they are.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    TomlRead(#[from] toml::de::Error),
    #[error(transparent)]
    TomlWrite(#[from] toml::ser::Error),
    #[error(transparent)]
    Image(#[from] image::ImageError),
    #[error(transparent)]
    Protobuf(#[from] protobuf::Error),
    #[error(transparent)]
    Fmt(#[from] std::fmt::Error),
    #[error(transparent)]
    Utf8(#[from] std::str::Utf8Error),
    #[error(transparent)]
    ParseInt(#[from] std::num::ParseIntError),
    #[error(transparent)]
    ParseFloat(#[from] std::num::ParseFloatError),
    #[error(transparent)]
    Nb201Query(#[from] QueryError),
    #[error(transparent)]
    Nb201Op(#[from] UnknownOpError),
    #[error(transparent)]
    DartsText(#[from] ParseError),
    #[error(transparent)]
    ProxylessSelect(#[from] SelectError),
}

impl Error {
    /// The error under the contexts added on the way up: the one to match.
    pub fn kind(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.kind(),
            other => other,
        }
    }

    /// The message and its causes, joined by ": " as anyhow's `{:#}` joins them (for text that travels on: a log
    /// line, another rank's error).
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            text.push_str(&format!(": {e}"));
            cause = e.source();
        }
        text
    }

    pub(crate) fn context(self, context: impl Display) -> Error {
        Error::Context { context: context.to_string(), source: Box::new(self) }
    }
}

/// Adds what was being done to a failure, as `anyhow::Context` does, keeping the typed error as its source.
pub(crate) trait Context<T> {
    fn context<C: Display>(self, context: C) -> Result<T>;
    fn with_context<C: Display, F: FnOnce() -> C>(self, context: F) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for Result<T, E> {
    fn context<C: Display>(self, context: C) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Display, F: FnOnce() -> C>(self, context: F) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

/// A missing value becomes an untyped failure that says `context`.
impl<T> Context<T> for Option<T> {
    fn context<C: Display>(self, context: C) -> Result<T> {
        self.ok_or_else(|| Error::Message(context.to_string()))
    }

    fn with_context<C: Display, F: FnOnce() -> C>(self, context: F) -> Result<T> {
        self.ok_or_else(|| Error::Message(context().to_string()))
    }
}

/// Returns an error: an [`Error`] given as is (`bail!(Error::Missing { .. })`), else [`Error::Message`] formatted as
/// `format!` does.
macro_rules! bail {
    ($msg:literal $(,)?) => {
        return Err($crate::error::Error::Message(format!($msg)))
    };
    ($err:expr $(,)?) => {
        return Err($crate::error::Error::from($err))
    };
    ($fmt:expr, $($arg:tt)*) => {
        return Err($crate::error::Error::Message(format!($fmt, $($arg)*)))
    };
}

/// Returns the error [`bail!`] makes of the remaining arguments unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {{
        // Bound first: `!(a < b)` on floats is what clippy's neg_cmp_op_on_partial_ord refuses.
        let holds: bool = $cond;
        if !holds {
            $crate::error::bail!($($arg)+);
        }
    }};
}

pub(crate) use {bail, ensure};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{layered, Overrides, Preset};
    use crate::data::{open_split, DataFormat, Split};
    use crate::dist::{Collective, Dist};
    use crate::registry::resolve::{resolve, Source};
    use crate::space::{nb201::Nb201, Space, SpaceName};
    use std::error::Error as _;
    use std::sync::Arc;

    /// Two ranks, of which the other has died: every collective fails as c10d reports it.
    struct DeadPeer;

    impl Collective for DeadPeer {
        fn rank(&self) -> usize {
            0
        }
        fn world(&self) -> usize {
            2
        }
        fn engine(&self) -> String {
            "dead peer".into()
        }
        fn all_reduce_sum(&self, _: &[tch::Tensor]) -> crate::dist::Result<()> {
            self.barrier()
        }
        fn broadcast(&self, _: &[tch::Tensor], _: usize) -> crate::dist::Result<()> {
            self.barrier()
        }
        fn barrier(&self) -> crate::dist::Result<()> {
            Err(DistError::Collective { rank: 0, detail: "broadcast failed: rank(s) 1 died".into() })
        }
    }

    /// A caller matches the kinds behind the contexts added on the way up, and reaches the io, toml and weights
    /// causes as sources.
    #[test]
    fn callers_can_match_the_kinds_and_reach_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let err = open_split(Some(&missing), DataFormat::Auto, Split::Train).err().unwrap();
        assert!(matches!(err.kind(), Error::Data { path, .. } if path == &missing), "{}", err.report());

        let config = dir.path().join("none.toml");
        match crate::config::read_toml(&config).unwrap_err() {
            Error::ConfigRead { path, source } => {
                assert_eq!((path, source.kind()), (config, std::io::ErrorKind::NotFound));
            }
            other => panic!("{other}"),
        }
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "x = \n").unwrap();
        let err = crate::config::read_toml(&bad).unwrap_err();
        assert!(matches!(err, Error::ConfigParse { .. }) && err.source().is_some(), "{err}");
        std::fs::write(&bad, "[supernet]\nlayerz = 3\n").unwrap();
        let err = layered(Nb201::search_preset(Preset::Smoke), Some(&bad), &Overrides::default()).unwrap_err();
        let named = |name: &str, message: &str| name == bad.display().to_string() && message.contains("layerz");
        assert!(matches!(err.kind(), Error::Config { source_name, message } if named(source_name, message)), "{err}");
        let mut flags = Overrides::default();
        flags.set("supernet.layers", "--layers", 6);
        let err = layered(Nb201::search_preset(Preset::Smoke), None, &flags).unwrap_err();
        assert!(matches!(err.kind(), Error::UnknownKey { key, .. } if key == "supernet.layers"), "{}", err.report());

        std::fs::write(dir.path().join("config.toml"), "space = \"nb201\"\n").unwrap();
        let err = resolve(Source::Run(dir.path()), Some(SpaceName::Darts)).unwrap_err();
        assert!(matches!(err.kind(), Error::WrongSpace { is, not, .. } if is == "nb201" && not == "darts"));
        let err = crate::report::claim_run_folder(dir.path(), "").unwrap_err();
        assert!(matches!(err.kind(), Error::RunBusy { existing, .. } if existing == "config.toml"), "{}", err.report());

        let weights = dir.path().join("w.safetensors");
        std::fs::write(&weights, b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let err = crate::nn::weights::load(&vs, &weights).unwrap_err();
        match err.kind() {
            Error::CorruptWeights { path, source } => {
                assert!(path == &weights && matches!(source, WeightsCause::Torch(_)))
            }
            other => panic!("{other}"),
        }
        let err = crate::nn::weights::names(&weights).unwrap_err();
        assert!(matches!(err.kind(), Error::CorruptWeights { source: WeightsCause::Io(_), .. }), "{}", err.report());

        let dist = Dist::from_collective(Arc::new(DeadPeer), 0);
        let err = dist.from_root(Ok(1u8)).unwrap_err();
        assert!(matches!(err.kind(), Error::Dist(DistError::Collective { rank: 0, .. })), "{}", err.report());
    }

    /// The contexts read outermost first, down to the cause, as anyhow's `{:#}` prints them.
    #[test]
    fn the_report_joins_the_contexts_and_causes() {
        let err = Err::<(), _>(std::io::Error::other("disk full")).context("writing x").context("saving").unwrap_err();
        assert_eq!(err.report(), "saving: writing x: disk full");
        assert_eq!(err.to_string(), "saving");
        assert!(matches!(err.kind(), Error::Io(_)));
        assert_eq!(format!("{:#}", anyhow::Error::from(err)), "saving: writing x: disk full");
    }
}
