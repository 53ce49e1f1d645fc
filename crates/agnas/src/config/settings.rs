//! The settings a user may give on the command line, one table per owner: each row names its configuration key, its
//! flag, its help line and how its text becomes a value. The command line builds its flags, their `--help` and
//! their mapping into the configuration from these tables only, so a flag cannot be declared and then forgotten.
use serde::Serialize;

/// How a flag's text becomes the value under its key.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// A number from 0 to 1.
    Share,
    /// A number strictly between 0 and 1.
    Fraction,
    /// A number F strictly between 0 and 1 that sets its key to 1 − F (the held-out share sets the training share).
    Complement,
    /// A file or folder.
    Path,
    /// One of `values`; `parse` also takes the aliases the type accepts and gives the name the file holds.
    Named { values: &'static [&'static str], parse: fn(&str) -> Result<toml::Value, String> },
    /// A flag without a value that sets its key to this.
    Switch(bool),
}

/// One setting: `--flag VALUE` sets `key` (dotted, `train.lr`) of the command's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    /// The long flag without its dashes.
    pub flag: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Flags that make no sense beside this one.
    pub conflicts: &'static [&'static str],
    /// Older spellings of the flag, still taken (hidden from `--help`) for the scripts that use them.
    pub aliases: &'static [&'static str],
    /// Part of a network's shape: what is needed to rebuild a network from its weights (`eval`, `params`, `bench`).
    pub shape: bool,
    /// Where a run executes, not what it computes (device, threads, loader workers): `--resume` takes it.
    pub resumable: bool,
}

impl Setting {
    pub const fn new(key: &'static str, flag: &'static str, kind: Kind, help: &'static str) -> Self {
        Setting { key, flag, help, kind, conflicts: &[], aliases: &[], shape: false, resumable: false }
    }

    pub const fn aliases(self, flags: &'static [&'static str]) -> Self {
        Setting { aliases: flags, ..self }
    }

    pub const fn conflicts(self, flags: &'static [&'static str]) -> Self {
        Setting { conflicts: flags, ..self }
    }

    /// Marks a setting of where a run executes, which a resumed run may change.
    pub const fn resumable(self) -> Self {
        Setting { resumable: true, ..self }
    }

    /// Marks a part of a network's shape.
    pub const fn shape(self) -> Self {
        Setting { shape: true, ..self }
    }

    /// The section the key is in (`train` of `train.lr`; empty for a top-level key).
    pub fn section(&self) -> &'static str {
        self.key.split_once('.').map_or("", |(section, _)| section)
    }

    /// The value `text` gives the key, or why `text` is no value of this setting.
    pub fn value(&self, text: &str) -> Result<toml::Value, String> {
        let number = || text.trim().parse::<f64>().map_err(|_| format!("`{text}` is not a number"));
        Ok(match self.kind {
            Kind::Int => {
                let n: i64 = text.trim().parse().map_err(|_| format!("`{text}` is not a whole number"))?;
                if n < 0 {
                    return Err(format!("must be at least 0 (got {n})"));
                }
                toml::Value::Integer(n)
            }
            Kind::Float => toml::Value::Float(number()?),
            Kind::Share => {
                let f = number()?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(format!("must be between 0 and 1 (got {f})"));
                }
                toml::Value::Float(f)
            }
            Kind::Fraction | Kind::Complement => {
                let f = number()?;
                if !(f > 0.0 && f < 1.0) {
                    return Err(format!("must be strictly between 0 and 1 (got {f})"));
                }
                toml::Value::Float(if matches!(self.kind, Kind::Complement) { 1.0 - f } else { f })
            }
            Kind::Path => toml::Value::String(text.to_string()),
            Kind::Named { parse, .. } => parse(text)?,
            Kind::Switch(on) => toml::Value::Boolean(on),
        })
    }
}

/// The SE reduction ratio of a supernet's attention modules, which every space's `[supernet]` has.
pub const ATTENTION_RATIO: Setting = Setting::new(
    "supernet.attention_ratio",
    "attention-ratio",
    Kind::Int,
    "SE reduction ratio of the attention modules.",
);

/// The name a value of `T` is written with in a configuration file, from any name `T` parses (`channels-last`,
/// `nhwc` → `channels_last`).
pub fn named<T: std::str::FromStr + strum::VariantNames + Serialize>(text: &str) -> Result<toml::Value, String> {
    let value: T = text.parse().map_err(|_| format!("unknown value `{text}` (one of: {})", T::VARIANTS.join(", ")))?;
    toml::Value::try_from(value).map_err(|e| e.to_string())
}

/// A [`Kind::Named`] for `T`.
pub const fn named_kind<T: std::str::FromStr + strum::VariantNames + Serialize>() -> Kind {
    Kind::Named { values: T::VARIANTS, parse: named::<T> }
}

/// One value given for a key, and where it came from (a flag, `--set`), for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub source: String,
    pub value: toml::Value,
}

/// The values given on a command line, laid over a configuration by [`crate::config::layered`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(pub Vec<Override>);

impl Overrides {
    /// `key = value`, given as `source`.
    pub fn set(&mut self, key: impl Into<String>, source: impl Into<String>, value: impl Into<toml::Value>) {
        self.0.push(Override { key: key.into(), source: source.into(), value: value.into() });
    }

    /// A `--set section.key=value`: the value as TOML (`3`, `0.5`, `true`, `[1, 2]`, `"text"`), else as text.
    pub fn set_text(&mut self, assignment: &str) -> Result<(), String> {
        let (key, text) = assignment
            .split_once('=')
            .ok_or_else(|| format!("`{assignment}` is not key=value (e.g. train.lr=0.05)"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("`{key}` is not a dotted key (e.g. supernet.channels)"));
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(text.to_string()));
        self.set(key, format!("--set {assignment}"), value);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value given for `key`, the last one if several were.
    pub fn get(&self, key: &str) -> Option<&toml::Value> {
        self.0.iter().rev().find(|o| o.key == key).map(|o| &o.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::MemoryFormat;

    #[test]
    fn values_are_checked_and_written_as_the_file_holds_them() {
        let s = |kind| Setting::new("a.b", "b", kind, "");
        assert_eq!(s(Kind::Int).value("12"), Ok(toml::Value::Integer(12)));
        assert!(s(Kind::Int).value("-1").unwrap_err().contains("at least 0"));
        assert!(s(Kind::Int).value("1.5").unwrap_err().contains("whole number"));
        assert_eq!(s(Kind::Float).value("6e8"), Ok(toml::Value::Float(6e8)));
        assert!(s(Kind::Share).value("1.5").unwrap_err().contains("between 0 and 1"));
        assert!(s(Kind::Fraction).value("1").unwrap_err().contains("strictly"));
        assert_eq!(s(Kind::Complement).value("0.25"), Ok(toml::Value::Float(0.75)));
        assert_eq!(s(Kind::Switch(false)).value(""), Ok(toml::Value::Boolean(false)));
        let layout = s(named_kind::<MemoryFormat>());
        assert_eq!(layout.value("nhwc"), Ok(toml::Value::String("channels_last".into())));
        assert!(layout.value("sideways").unwrap_err().contains("one of: auto"));
    }

    #[test]
    fn set_reads_toml_values_and_falls_back_to_text() {
        let mut o = Overrides::default();
        for a in ["train.lr=0.05", "supernet.affine=true", "data.path=some/folder", "train.epochs = 3"] {
            o.set_text(a).unwrap();
        }
        assert_eq!(o.get("train.lr"), Some(&toml::Value::Float(0.05)));
        assert_eq!(o.get("supernet.affine"), Some(&toml::Value::Boolean(true)));
        assert_eq!(o.get("data.path"), Some(&toml::Value::String("some/folder".into())));
        assert_eq!(o.get("train.epochs"), Some(&toml::Value::Integer(3)));
        assert!(o.set_text("train.lr").unwrap_err().contains("key=value"));
        assert!(o.set_text("train..lr=1").unwrap_err().contains("dotted key"));
    }
}
