//! The presets' values in the help of `search` and `train`: a flag left out takes its value from the preset of the
//! chosen space, so its help says what that is (`--epochs … [preset defaults: nb201 paper 50, embedded 10; …]`).
use agnas::config::Preset;
use agnas::space::{Space, SpaceName, SpaceTask};
use clap::Command;

/// Flags whose value a preset sets, with the configuration keys they set (the first one a space has).
const FLAGS: [(&str, &[&str]); 27] = [
    ("seed", &["seed"]),
    ("device", &["device"]),
    ("threads", &["threads"]),
    ("memory_format", &["memory_format"]),
    ("epochs", &["train.epochs"]),
    ("batch_size", &["train.batch_size"]),
    ("lr", &["train.lr"]),
    ("lr_min", &["train.lr_min"]),
    ("momentum", &["train.momentum"]),
    ("weight_decay", &["train.weight_decay"]),
    ("grad_clip", &["train.grad_clip"]),
    ("cutout", &["train.augment.cutout"]),
    ("checkpoint_every", &["train.checkpoint_every"]),
    ("per_class", &["data.per_class"]),
    ("workers", &["data.workers"]),
    ("split", &["data.split"]),
    ("channels", &["supernet.channels", "network.channels"]),
    ("layers", &["supernet.layers", "network.layers"]),
    ("cells_per_stage", &["supernet.cells_per_stage", "network.cells_per_stage"]),
    ("width_mult", &["supernet.width_mult", "network.width_mult"]),
    ("attention_ratio", &["supernet.attention_ratio"]),
    ("heldout_every", &["importance.every"]),
    ("heldout_subset", &["importance.subset"]),
    ("resamples", &["importance.resamples"]),
    ("min_confidence", &["importance.min_confidence"]),
    ("min_epochs", &["importance.min_epochs"]),
    ("drop_path", &["network.drop_path"]),
];

/// The presets a user picks for real runs (`smoke` only checks the pipeline).
const PRESETS: [Preset; 2] = [Preset::Paper, Preset::Embedded];

/// A preset's configuration as JSON, for the search or for retraining.
struct PresetJson {
    preset: Preset,
    search: bool,
}

impl SpaceTask for PresetJson {
    type Output = serde_json::Value;

    fn run<S: Space>(self) -> serde_json::Value {
        let value = if self.search {
            serde_json::to_value(S::search_preset(self.preset))
        } else {
            serde_json::to_value(S::retrain_preset(self.preset))
        };
        value.unwrap_or_default()
    }
}

fn lookup<'a>(v: &'a serde_json::Value, dotted: &str) -> Option<&'a serde_json::Value> {
    dotted.split('.').try_fold(v, |v, key| v.get(key))
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "[preset defaults: nb201 paper 50, embedded 10; darts paper 50 …]" for the flag setting `keys`, or one value
/// when every space and preset agree; `None` when no preset sets it.
fn defaults(configs: &[(SpaceName, Preset, serde_json::Value)], keys: &[&str]) -> Option<String> {
    let values: Vec<(SpaceName, Preset, String)> = configs
        .iter()
        .filter_map(|(space, preset, c)| Some((*space, *preset, shown(keys.iter().find_map(|k| lookup(c, k))?))))
        .collect();
    let first = &values.first()?.2;
    if values.iter().all(|(_, _, v)| v == first) {
        return Some(format!("[preset default: {first}]"));
    }
    let per_space: Vec<String> = SpaceName::all()
        .filter_map(|space| {
            let of: Vec<String> = values
                .iter()
                .filter(|v| v.0 == space)
                .map(|(_, p, v)| format!("{} {v}", format!("{p:?}").to_lowercase()))
                .collect();
            (!of.is_empty()).then(|| format!("{} {}", space.as_str(), of.join(", ")))
        })
        .collect();
    Some(format!("[preset defaults: {}]", per_space.join("; ")))
}

fn annotate(cmd: Command, search: bool) -> Command {
    let configs: Vec<(SpaceName, Preset, serde_json::Value)> = SpaceName::all()
        .flat_map(|space| PRESETS.map(|preset| (space, preset, space.dispatch(PresetJson { preset, search }))))
        .collect();
    FLAGS.iter().fold(cmd, |cmd, (id, keys)| {
        let Some(note) = defaults(&configs, keys) else { return cmd };
        if !cmd.get_arguments().any(|a| a.get_id() == *id) {
            return cmd;
        }
        cmd.mut_arg(*id, |a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            a.help(format!("{help} {note}"))
        })
    })
}

/// The command line with the presets' values in the help of `search` and `train`.
pub fn with_preset_defaults(cmd: Command) -> Command {
    cmd.mut_subcommand("search", |c| annotate(c, true)).mut_subcommand("train", |c| annotate(c, false))
}
