//! The registry: every space as an object a command can ask, whatever its types. [`space`] turns a name into a
//! `&'static dyn AnySpace` (the one place that lists the spaces), and [`AnySpace`] is what commands ask of it: its
//! settings and presets, and each task run in it. A space implements the typed [`Space`] trait; the blanket
//! [`Registered`] makes it an `AnySpace`, so a new space is its folder plus one line below.
pub mod resolve;

use crate::baseline::{self, BaselineResult};
use crate::config::{self, Preset, Recipe, Setting};
use crate::data::DataConfig;
use crate::error::Result;
use crate::retrain::{self, Network, NetworkOf, NetworkSize, NetworkSource, RetrainResult};
pub use crate::runs::Seed;
use crate::runs::{self, Comparison};
use crate::search::{self, SearchResult};
use crate::space::{
    darts, nb201, proxyless, BenchBlock, Benchmark, Derived, GenotypeFormat, Space, SpaceName, Supernet,
};
use crate::train::{Finished, Launch, TrainConfig};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use tch::{nn, Device};

/// The space a name stands for.
pub fn space(name: SpaceName) -> &'static dyn AnySpace {
    static NB201: Registered<nb201::Nb201> = Registered::new(SpaceName::Nb201);
    static DARTS: Registered<darts::Darts> = Registered::new(SpaceName::Darts);
    static PROXYLESS: Registered<proxyless::Proxyless> = Registered::new(SpaceName::Proxyless);
    match name {
        SpaceName::Nb201 => &NB201,
        SpaceName::Darts => &DARTS,
        SpaceName::Proxyless => &PROXYLESS,
    }
}

/// Every registered space.
pub fn all() -> impl Iterator<Item = &'static dyn AnySpace> {
    SpaceName::all().map(space)
}

/// The configurations a command resolves from a [`Recipe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Configuration {
    /// `search` (`[supernet]`, `[derive]`, …).
    Search,
    /// `train` (`[network]`, the retrain recipe).
    Retrain,
    /// `baseline random` (the candidates' retrain recipe under `candidate`).
    Random,
}

/// A genotype parsed by its space, as commands show it.
pub trait AnyGenotype {
    /// As `genotype.json` and `agnas genotype show --to json` write it.
    fn json(&self) -> Result<serde_json::Value>;
    /// As the field writes it (Python text, an arch string).
    fn text(&self) -> String;
    /// Its pictures by file name.
    fn pictures(&self, title: &str) -> Vec<(String, String)>;
}

/// A supernet to time, in the paper's search configuration with the shape the flags give.
pub struct SupernetBench {
    /// The configuration's `[supernet]` section.
    pub shape: serde_json::Value,
    pub train: TrainConfig,
    pub data: DataConfig,
    pub seed: u64,
    /// Builds the supernet for RGB images and 10 classes.
    pub build: BuildSupernet,
}

/// Builds a supernet's variables under a path.
pub type BuildSupernet = Box<dyn Fn(&nn::Path) -> Box<dyn Supernet>>;

/// What a command asks of a space. Object-safe: commands hold a `&'static dyn AnySpace` and never the space's types.
pub trait AnySpace: Sync {
    fn name(&self) -> SpaceName;
    /// The settings of the space's own sections that a user may give on the command line.
    fn settings(&self) -> &'static [Setting];
    /// The table of trained architectures the space's results are looked up in, if it has one.
    fn benchmark(&self) -> Option<Benchmark>;
    /// (image side, classes) of the benchmark its networks are measured on.
    fn reference_input(&self) -> (i64, i64);
    /// A configuration resolved from a recipe, as the run folder's `config.toml` would hold it (TOML text).
    fn configuration(&self, of: Configuration, recipe: &Recipe) -> Result<String>;
    /// The space's paper evaluation network with the network shape `shape`, as a configuration (TOML text).
    fn paper_network(&self, shape: &config::Overrides) -> Result<String>;

    /// A search: a new one of the recipe, or the one `launch` resumes.
    fn search(&self, recipe: &Recipe, launch: Launch) -> Result<Finished<SearchResult>>;
    /// One search per seed into `seed-<n>` folders of one folder (finished ones kept, stopped ones resumed), then
    /// their comparison (on rank 0), also written there as `report.json` and `report.md`. `Finished::out` is that
    /// folder; `each` hears how every seed goes.
    fn search_seeds(
        &self,
        recipe: &Recipe,
        seeds: &[u64],
        launch: Launch,
        each: &mut dyn FnMut(u64, Seed),
    ) -> Result<Finished<Option<Comparison>>>;
    /// A retrain of the recipe's genotype, or the one `launch` resumes.
    fn retrain(&self, recipe: &Recipe, launch: Launch) -> Result<Finished<RetrainResult>>;
    /// A random search at the budget the recipe gives, or that of the finished search `budget_of`.
    fn random(&self, recipe: &Recipe, budget_of: Option<&Path>, launch: Launch) -> Result<Finished<BaselineResult>>;
    /// Derives the genotype of a finished search again, with `[derive]` settings laid over the search's.
    fn rederive(&self, run: &Path, given: &config::Overrides) -> Result<Derived>;
    /// Runs of this space compared: every metric's mean ± std, and the consensus of searches.
    fn compare(&self, dirs: &[PathBuf]) -> Result<Comparison>;

    /// An evaluation network on `device`.
    fn network(&self, source: NetworkSource, device: Device) -> Result<Network>;
    /// Parameters and MACs of a genotype's paper network.
    fn size(&self, of: &NetworkOf) -> Result<NetworkSize>;
    /// A genotype as a user gives it: a built-in name, an arch string, a file.
    fn genotype(&self, spec: &str) -> Result<Box<dyn AnyGenotype>>;
    /// The heatmap of one pass of `importances.json`, with `notes` under it.
    fn importance_svg(&self, described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String>;

    /// The supernet of the paper's search configuration with the shape `shape`, to time.
    fn supernet_bench(&self, shape: &config::Overrides) -> Result<SupernetBench>;
    /// The building blocks of the supernet at `c` channels and batch `b`, to time.
    fn bench_blocks(&self, p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock>;
}

/// A [`Space`] as an [`AnySpace`], under its registered name.
pub struct Registered<S> {
    name: SpaceName,
    // A function type holds no `S`, so the marker is shareable whatever `S` is.
    space: PhantomData<fn() -> S>,
}

impl<S> Registered<S> {
    const fn new(name: SpaceName) -> Self {
        Registered { name, space: PhantomData }
    }
}

/// A genotype of the space `S`.
struct Parsed<S: Space>(S::Genotype);

impl<S: Space> AnyGenotype for Parsed<S> {
    fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.0)?)
    }

    fn text(&self) -> String {
        self.0.text()
    }

    fn pictures(&self, title: &str) -> Vec<(String, String)> {
        self.0.pictures(title)
    }
}

/// A configuration as the TOML document `config.toml` is.
fn toml_of<C: serde::Serialize>(c: Result<C>) -> Result<String> {
    Ok(toml::to_string_pretty(&c?)?)
}

impl<S: Space> AnySpace for Registered<S> {
    fn name(&self) -> SpaceName {
        self.name
    }

    fn settings(&self) -> &'static [Setting] {
        S::SETTINGS
    }

    fn benchmark(&self) -> Option<Benchmark> {
        S::benchmark().map(|b| b.about())
    }

    fn reference_input(&self) -> (i64, i64) {
        S::REFERENCE_INPUT
    }

    fn configuration(&self, of: Configuration, recipe: &Recipe) -> Result<String> {
        match of {
            Configuration::Search => toml_of(search::config::<S>(recipe)),
            Configuration::Retrain => toml_of(retrain::config::<S>(recipe)),
            Configuration::Random => toml_of(baseline::config::<S>(recipe)),
        }
    }

    fn paper_network(&self, shape: &config::Overrides) -> Result<String> {
        toml_of(retrain::paper_network::<S>(shape))
    }

    fn search(&self, recipe: &Recipe, launch: Launch) -> Result<Finished<SearchResult>> {
        search::launch::<S>(recipe, launch)
    }

    fn search_seeds(
        &self,
        recipe: &Recipe,
        seeds: &[u64],
        launch: Launch,
        each: &mut dyn FnMut(u64, Seed),
    ) -> Result<Finished<Option<Comparison>>> {
        runs::search_seeds::<S>(recipe, seeds, launch, each)
    }

    fn retrain(&self, recipe: &Recipe, launch: Launch) -> Result<Finished<RetrainResult>> {
        retrain::launch::<S>(recipe, launch)
    }

    fn random(&self, recipe: &Recipe, budget_of: Option<&Path>, launch: Launch) -> Result<Finished<BaselineResult>> {
        baseline::launch::<S>(recipe, budget_of, launch)
    }

    fn rederive(&self, run: &Path, given: &config::Overrides) -> Result<Derived> {
        search::rederive::<S>(run, given)
    }

    fn compare(&self, dirs: &[PathBuf]) -> Result<Comparison> {
        runs::compare::<S>(dirs)
    }

    fn network(&self, source: NetworkSource, device: Device) -> Result<Network> {
        retrain::network::<S>(source, device)
    }

    fn size(&self, of: &NetworkOf) -> Result<NetworkSize> {
        retrain::size::<S>(of)
    }

    fn genotype(&self, spec: &str) -> Result<Box<dyn AnyGenotype>> {
        Ok(Box::new(Parsed::<S>(S::Genotype::parse(spec)?)))
    }

    fn importance_svg(&self, described: &serde_json::Value, title: &str, notes: &[String]) -> Result<String> {
        S::importance_svg(described, title, notes)
    }

    fn supernet_bench(&self, shape: &config::Overrides) -> Result<SupernetBench> {
        let cfg = search::config::<S>(&Recipe::preset(Preset::Paper, shape))?;
        cfg.validate()?;
        let supernet = cfg.supernet.clone();
        Ok(SupernetBench {
            shape: serde_json::to_value(&cfg.supernet)?,
            train: cfg.train,
            data: cfg.data,
            seed: cfg.seed,
            build: Box::new(move |p| S::build_supernet(&supernet, p, 3, 10)),
        })
    }

    fn bench_blocks(&self, p: &nn::Path, c: i64, b: i64) -> Vec<BenchBlock> {
        S::bench_blocks(p, c, b)
    }
}

impl std::fmt::Debug for dyn AnySpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_name_is_the_space_of_that_name() {
        let given = config::Overrides::default();
        for name in SpaceName::all() {
            for of in [Configuration::Search, Configuration::Retrain, Configuration::Random] {
                let text = space(name).configuration(of, &Recipe::preset(Preset::Smoke, &given)).unwrap();
                let c: toml::Value = text.parse().unwrap();
                assert_eq!(c.get("space").and_then(|s| s.as_str()), Some(name.as_str()), "{of:?}");
            }
        }
        assert_eq!(all().count(), <SpaceName as strum::VariantNames>::VARIANTS.len());
    }
}
