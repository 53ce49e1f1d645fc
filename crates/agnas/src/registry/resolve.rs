//! Which space a thing a user names belongs to: a run folder, a configuration file, or a genotype (a file or text),
//! each against the `--space` the user may have given. The one place that answers it.
use crate::error::{bail, Context, Result};
use crate::report::CONFIG_FILE;
use crate::space::SpaceName;
use crate::Error;
use std::path::Path;

/// What a command was given to work on.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A run folder: a search's, a random search's or a retrain's (its `config.toml`).
    Run(&'a Path),
    /// A finished retrain's folder, as `eval` and `export` take it (its `model.json`).
    Model(&'a Path),
    /// A configuration file laid over a preset, if any.
    Config(Option<&'a Path>),
    /// A genotype as a user gives it: a `genotype.json`, a built-in name, an arch string or id list, Python text.
    Genotype(&'a str),
}

/// The space of `source`. `flag` (`--space`) must agree with what the source says of itself; a source that says
/// nothing takes the flag, else the default space.
pub fn resolve(source: Source, flag: Option<SpaceName>) -> Result<SpaceName> {
    match source {
        Source::Run(dir) => {
            let path = dir.join(CONFIG_FILE);
            crate::error::ensure!(path.is_file(), "{} is not a run folder (it has no {CONFIG_FILE})", dir.display());
            agree(named_in_toml(&path)?, flag, &path.display().to_string())
        }
        Source::Model(dir) => {
            let (path, text) = crate::report::read_model_json(dir)?;
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let name = value.get("space").and_then(|s| s.as_str()).unwrap_or_default();
            let named = SpaceName::parse(name).with_context(|| format!("{}: space", path.display()))?;
            agree(Some(named), flag, &path.display().to_string())
        }
        Source::Config(None) => Ok(flag.unwrap_or_default()),
        Source::Config(Some(path)) => agree(named_in_toml(path)?, flag, &path.display().to_string()),
        Source::Genotype(spec) => genotype(spec, flag),
    }
}

/// The space a file names against the flag: they must agree.
fn agree(named: Option<SpaceName>, flag: Option<SpaceName>, what: &str) -> Result<SpaceName> {
    match (named, flag) {
        (Some(named), Some(flag)) if named != flag => bail!(Error::WrongSpace {
            what: what.to_string(),
            is: named.to_string(),
            not: flag.to_string(),
            hint: String::new(),
        }),
        (named, flag) => Ok(named.or(flag).unwrap_or_default()),
    }
}

/// The `space = "…"` of a configuration file, if it has one.
fn named_in_toml(path: &Path) -> Result<Option<SpaceName>, Error> {
    match crate::config::read_toml(path)?.get("space").and_then(|v| v.as_str()) {
        Some(name) => SpaceName::parse(name).map(Some),
        None => Ok(None),
    }
}

/// The space of a genotype: the `space` its JSON file names, else the registered spaces whose parsers take it.
fn genotype(spec: &str, flag: Option<SpaceName>) -> Result<SpaceName> {
    let named = match std::fs::read_to_string(spec) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("space").and_then(|s| s.as_str()).map(String::from)),
        Err(_) => None,
    };
    if let Some(name) = named {
        let named = SpaceName::parse(&name).with_context(|| format!("genotype {spec}: space"))?;
        return agree(Some(named), flag, &format!("genotype {spec}"));
    }
    if let Some(flag) = flag.filter(|f| parses(*f, spec).is_ok()) {
        return Ok(flag);
    }
    let parses: Vec<(SpaceName, Result<(), String>)> = SpaceName::all().map(|n| (n, parses(n, spec))).collect();
    let fits: Vec<SpaceName> = parses.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| *n).collect();
    match (flag, &fits[..]) {
        // The flag's space does not take it: say whose it is, where another's does.
        (Some(flag), [other, ..]) => bail!(Error::WrongSpace {
            what: format!("genotype `{spec}`"),
            is: fits.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" or "),
            not: flag.to_string(),
            hint: format!(": give --space {other}, or a genotype of {flag}"),
        }),
        (Some(flag), []) => Ok(flag),
        (None, [one]) => Ok(*one),
        (None, []) => {
            let why: Vec<String> =
                parses.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
            bail!("`{spec}` is a genotype of no space ({})", why.join("; "))
        }
        (None, _) => bail!("`{spec}` is a genotype of several spaces: give --space"),
    }
}

/// Whether a space's parser takes a genotype, and why not.
fn parses(space: SpaceName, spec: &str) -> Result<(), String> {
    super::space(space).genotype(spec).map(|_| ()).map_err(|e| e.report())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_genotype_of_another_space_names_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("genotype.json");
        std::fs::write(&file, r#"{"space": "nb201", "arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"}"#).unwrap();
        let spec = file.to_str().unwrap();
        assert_eq!(resolve(Source::Genotype(spec), None).unwrap(), SpaceName::Nb201);
        let err = resolve(Source::Genotype(spec), Some(SpaceName::Darts)).unwrap_err().to_string();
        assert!(err.contains("is nb201, not darts"), "{err}");
        let arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|";
        let err = resolve(Source::Genotype(arch), Some(SpaceName::Proxyless)).unwrap_err().to_string();
        assert!(err.contains("is nb201, not proxyless") && err.contains("--space nb201"), "{err}");
        assert_eq!(resolve(Source::Genotype("agnas"), None).unwrap(), SpaceName::Darts);
        assert_eq!(resolve(Source::Genotype("released"), Some(SpaceName::Proxyless)).unwrap(), SpaceName::Proxyless);
    }

    #[test]
    fn a_run_folder_and_a_configuration_file_agree_with_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "space = \"darts\"\n").unwrap();
        assert_eq!(resolve(Source::Run(dir.path()), None).unwrap(), SpaceName::Darts);
        let err = resolve(Source::Run(dir.path()), Some(SpaceName::Nb201)).unwrap_err().to_string();
        assert!(err.contains("config.toml is darts, not nb201"), "{err}");
        let err = resolve(Source::Run(&dir.path().join("none")), None).unwrap_err().to_string();
        assert!(err.contains("is not a run folder"), "{err}");
        assert_eq!(resolve(Source::Config(None), Some(SpaceName::Proxyless)).unwrap(), SpaceName::Proxyless);
        assert_eq!(resolve(Source::Config(None), None).unwrap(), SpaceName::Nb201);
    }
}
