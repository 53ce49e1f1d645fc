//! The settings flags of a command, made from the library's tables only (the common ones, and one per space): their
//! clap arguments, their `--help` with the values the presets give them, and the values the given ones set. A
//! command says which tables it takes ([`Table`]); it never spells a key.
use agnas::baseline::BASELINE_SETTINGS;
use agnas::config::settings::{Kind, Overrides};
use agnas::config::{Preset, Recipe, Setting, RETRAIN_SETTINGS, RUN_SETTINGS, SEARCH_SETTINGS};
use agnas::registry::{self, Configuration};
use agnas::space::SpaceName;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use std::marker::PhantomData;

/// Which settings a command takes.
pub trait Table {
    /// The common tables, each with the prefix its keys take in the command's configuration.
    fn common() -> Vec<(&'static str, &'static [Setting])> {
        Vec::new()
    }
    /// Whether a space's own setting is one of the command's.
    fn takes(setting: &Setting) -> bool;
    /// The command's configuration as a preset of a space gives it, for the values shown in `--help`.
    fn preset(_presets: &Presets) -> Option<&serde_json::Value> {
        None
    }
    /// The flags set a run's configuration: they conflict with `--resume`, and `--set` is offered beside them.
    const RUN: bool = false;
}

/// A search: the run's and the search's settings, and each space's `[supernet]` and `[derive]`.
pub struct Search;
/// A retrain: the run's and the retrain's settings, and each space's `[network]`.
pub struct Retrain;
/// A random search: its own settings, its candidates' run settings, and the spaces' `derive.allow_none`.
pub struct Random;
/// A derivation again from a finished search: each space's `[derive]`.
pub struct Rederive;
/// An evaluation network without a run folder: each space's network shape.
pub struct NetworkShape;
/// A supernet timed on its own: each space's supernet shape.
pub struct SupernetShape;

impl Table for Search {
    const RUN: bool = true;
    fn common() -> Vec<(&'static str, &'static [Setting])> {
        vec![("", RUN_SETTINGS), ("", SEARCH_SETTINGS)]
    }
    fn takes(s: &Setting) -> bool {
        matches!(s.section(), "supernet" | "derive")
    }
    fn preset(p: &Presets) -> Option<&serde_json::Value> {
        Some(&p.search)
    }
}

impl Table for Retrain {
    const RUN: bool = true;
    fn common() -> Vec<(&'static str, &'static [Setting])> {
        vec![("", RUN_SETTINGS), ("", RETRAIN_SETTINGS)]
    }
    fn takes(s: &Setting) -> bool {
        s.section() == "network"
    }
    fn preset(p: &Presets) -> Option<&serde_json::Value> {
        Some(&p.retrain)
    }
}

impl Table for Random {
    const RUN: bool = true;
    fn common() -> Vec<(&'static str, &'static [Setting])> {
        vec![("candidate.", RUN_SETTINGS), ("", BASELINE_SETTINGS)]
    }
    // The draws honour no budget yet, so the other `[derive]` keys would change the configuration but not the draws.
    fn takes(s: &Setting) -> bool {
        s.key == "derive.allow_none"
    }
    fn preset(p: &Presets) -> Option<&serde_json::Value> {
        Some(&p.random)
    }
}

impl Table for Rederive {
    fn takes(s: &Setting) -> bool {
        s.section() == "derive"
    }
}

impl Table for NetworkShape {
    fn takes(s: &Setting) -> bool {
        s.section() == "network" && s.shape
    }
}

impl Table for SupernetShape {
    fn takes(s: &Setting) -> bool {
        s.section() == "supernet" && s.shape
    }
}

/// One flag of a command: its setting, the key it sets in the command's configuration, and the spaces whose table
/// it comes from (none: a common setting).
#[derive(Debug, Clone)]
pub struct Row {
    pub setting: Setting,
    pub key: String,
    pub spaces: Vec<(SpaceName, Setting)>,
}

impl Row {
    /// The flag's id in clap's matches: the flag itself.
    pub fn id(&self) -> &'static str {
        self.setting.flag
    }

    /// The help line: the setting's, one per space where the spaces word it differently, and the spaces that have
    /// it where not all do.
    fn help(&self) -> String {
        let mut helps: Vec<(SpaceName, &str)> = self.spaces.iter().map(|(n, s)| (*n, s.help)).collect();
        helps.dedup_by_key(|(_, h)| *h);
        let text = match helps[..] {
            [] => self.setting.help.to_string(),
            [(_, one)] => one.to_string(),
            _ => helps.iter().map(|(n, h)| format!("{n}: {h}")).collect::<Vec<_>>().join(" "),
        };
        let all = SpaceName::all().count();
        if self.spaces.is_empty() || self.spaces.len() == all {
            return text;
        }
        let names: Vec<&str> = self.spaces.iter().map(|(n, _)| n.as_str()).collect();
        format!("{text} [{}]", names.join(", "))
    }
}

/// The rows of a command's flags, in table order: the common ones, then the spaces', one row per flag.
pub fn rows<T: Table>() -> Vec<Row> {
    let mut rows: Vec<Row> = T::common()
        .into_iter()
        .flat_map(|(prefix, table)| {
            table.iter().map(move |s| Row { setting: *s, key: format!("{prefix}{}", s.key), spaces: Vec::new() })
        })
        .collect();
    for space in SpaceName::all() {
        for s in registry::space(space).settings().iter().filter(|s| T::takes(s)) {
            match rows.iter_mut().find(|r| r.setting.flag == s.flag && !r.spaces.is_empty()) {
                Some(row) => row.spaces.push((space, *s)),
                None => rows.push(Row { setting: *s, key: s.key.to_string(), spaces: vec![(space, *s)] }),
            }
        }
    }
    rows
}

/// A space's presets as JSON, for every command that shows them.
pub struct Presets {
    search: serde_json::Value,
    retrain: serde_json::Value,
    random: serde_json::Value,
}

impl Presets {
    /// A space's configurations at one preset.
    fn of(space: SpaceName, preset: Preset) -> Self {
        let none = Overrides::default();
        let json = |of| {
            let value = registry::space(space).configuration(of, &Recipe::preset(preset, &none));
            let value = value.ok().and_then(|text| text.parse::<toml::Value>().ok());
            value.and_then(|v| serde_json::to_value(v).ok()).unwrap_or_default()
        };
        Presets {
            search: json(Configuration::Search),
            retrain: json(Configuration::Retrain),
            random: json(Configuration::Random),
        }
    }
}

/// The presets a user picks for real runs (`smoke` only checks the pipeline).
const SHOWN_PRESETS: [Preset; 2] = [Preset::Paper, Preset::Embedded];

/// A preset's value as the flag would give it: a switch on or off, a held-out share for the training share it sets.
fn shown(kind: Kind, v: &serde_json::Value) -> Option<String> {
    match (kind, v) {
        (Kind::Switch(on), serde_json::Value::Bool(b)) => Some(if *b == on { "on" } else { "off" }.into()),
        (Kind::Complement, serde_json::Value::Number(n)) => {
            n.as_f64().map(|f| format!("{}", ((1.0 - f) * 1e9).round() / 1e9))
        }
        (_, serde_json::Value::Null) => None,
        (_, serde_json::Value::String(s)) if s.is_empty() => None,
        (_, serde_json::Value::String(s)) => Some(s.clone()),
        (_, other) => Some(other.to_string()),
    }
}

/// "[preset defaults: nb201 paper 50, embedded 10; darts paper 50 …]" for a row, or one value when every space and
/// preset agree; `None` when no preset holds the key.
fn defaults<T: Table>(row: &Row, presets: &[(SpaceName, Preset, Presets)]) -> Option<String> {
    let holds = |space: SpaceName| row.spaces.is_empty() || row.spaces.iter().any(|(n, _)| *n == space);
    let values: Vec<(SpaceName, Preset, String)> = presets
        .iter()
        .filter(|(space, _, _)| holds(*space))
        .filter_map(|(space, preset, p)| {
            let value = row.key.split('.').try_fold(T::preset(p)?, |v, k| v.get(k))?;
            Some((*space, *preset, shown(row.setting.kind, value)?))
        })
        .collect();
    let first = &values.first()?.2;
    if values.iter().all(|(_, _, v)| v == first) {
        return Some(format!("[preset default: {first}]"));
    }
    let per_space: Vec<String> = SpaceName::all()
        .filter_map(|space| {
            let of: Vec<&(SpaceName, Preset, String)> = values.iter().filter(|v| v.0 == space).collect();
            let same = of.iter().all(|v| v.2 == of[0].2);
            let text: Vec<String> = match same {
                true => of.first().map(|v| v.2.clone()).into_iter().collect(),
                false => of.iter().map(|(_, p, v)| format!("{} {v}", format!("{p:?}").to_lowercase())).collect(),
            };
            (!of.is_empty()).then(|| format!("{} {}", space.as_str(), text.join(", ")))
        })
        .collect();
    Some(format!("[preset defaults: {}]", per_space.join("; ")))
}

/// The clap argument of a row.
fn arg<T: Table>(row: &Row, presets: &[(SpaceName, Preset, Presets)]) -> Arg {
    let setting = row.setting;
    let help = match defaults::<T>(row, presets) {
        Some(note) => format!("{} {note}", row.help()),
        None => row.help(),
    };
    let arg = Arg::new(row.id()).long(setting.flag).aliases(setting.aliases).help(help);
    let arg = arg.conflicts_with_all(setting.conflicts);
    let arg = arg.value_name(setting.flag.to_uppercase().replace('-', "_"));
    let arg = if T::RUN && !setting.resumable { arg.group("config_flags") } else { arg };
    match setting.kind {
        Kind::Switch(_) => arg.action(ArgAction::SetTrue),
        Kind::Named { values, .. } => arg.value_name(values.join("|")).value_parser(parser(setting)),
        _ => arg.value_parser(parser(setting)),
    }
}

/// The value a flag's text gives its key; a bad one is refused naming the key too (`data.split`), which is what
/// a configuration file would hold.
fn parser(setting: Setting) -> impl Fn(&str) -> Result<toml::Value, String> + Clone + Send + Sync + 'static {
    move |text: &str| setting.value(text).map_err(|e| format!("{e} (it sets {})", setting.key))
}

/// The settings flags of a command of table `T`, and what the given ones set.
#[derive(Debug, Clone, Default)]
pub struct Settings<T> {
    pub given: Overrides,
    table: PhantomData<T>,
}

impl<T: Table> Args for Settings<T> {
    fn augment_args(cmd: Command) -> Command {
        let presets: Vec<(SpaceName, Preset, Presets)> = SpaceName::all()
            .flat_map(|space| SHOWN_PRESETS.map(|preset| (space, preset, Presets::of(space, preset))))
            .collect();
        let cmd = rows::<T>().iter().fold(cmd, |cmd, row| cmd.arg(arg::<T>(row, &presets)));
        if !T::RUN {
            return cmd;
        }
        cmd.arg(
            Arg::new("set").long("set").value_name("KEY=VALUE").action(ArgAction::Append).group("config_flags").help(
                "Any key of the configuration (as config.toml writes it), e.g. --set train.label_smoothing=0.1; \
                     repeatable, and applied after the other flags.",
            ),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl<T: Table> FromArgMatches for Settings<T> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Overrides::default();
        for row in rows::<T>() {
            let value = match row.setting.kind {
                Kind::Switch(on) => m.get_flag(row.id()).then_some(toml::Value::Boolean(on)),
                _ => m.get_one::<toml::Value>(row.id()).cloned(),
            };
            if let Some(value) = value {
                given.set(row.key.clone(), format!("--{}", row.setting.flag), value);
            }
        }
        if T::RUN {
            for text in m.get_many::<String>("set").into_iter().flatten() {
                given.set_text(text).map_err(|e| {
                    clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("--set {text}: {e}\n"))
                })?;
            }
        }
        Ok(Settings { given, table: PhantomData })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
