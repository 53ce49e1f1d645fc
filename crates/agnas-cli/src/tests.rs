//! The command line against the library's tables: every flag of every command does what it says.
use super::*;
use crate::flags::{rows, Row};
use agnas::config;
use agnas::config::settings::Kind;
use agnas::registry::Configuration;
use agnas::space::{nb201::Nb201, Space};

/// A command whose flags set a configuration: its path, its command line in a space, and its settings' rows.
struct Walked {
    path: &'static str,
    argv: fn(&str) -> Vec<&str>,
    rows: Vec<Row>,
}

fn commands() -> Vec<Walked> {
    vec![
        Walked {
            path: "search",
            argv: |s| vec!["search", "--preset", "smoke", "--space", s],
            rows: rows::<flags::Search>(),
        },
        Walked {
            path: "train",
            argv: |s| vec!["train", "--preset", "smoke", "--genotype", "g", "--space", s],
            rows: rows::<flags::Retrain>(),
        },
        Walked {
            path: "baseline random",
            argv: |s| vec!["baseline", "random", "--preset", "smoke", "--space", s],
            rows: rows::<flags::Random>(),
        },
        Walked {
            path: "genotype derive",
            argv: |_| vec!["genotype", "derive", "run"],
            rows: rows::<flags::Rederive>(),
        },
        Walked {
            path: "eval",
            argv: |s| vec!["eval", "--run", "w.safetensors", "--data", "d", "--space", s],
            rows: rows::<flags::NetworkShape>(),
        },
        Walked { path: "params", argv: |s| vec!["params", "--space", s], rows: rows::<flags::NetworkShape>() },
        Walked { path: "export", argv: |s| vec!["export", "--space", s], rows: rows::<flags::NetworkShape>() },
        Walked {
            path: "bench step",
            argv: |s| vec!["bench", "step", "--space", s],
            rows: rows::<flags::SupernetShape>(),
        },
    ]
}

/// The configuration a command line resolves to in a space, as the command resolves it.
fn resolve(argv: &[&str], space: SpaceName) -> Result<toml::Value> {
    let cli = Cli::try_parse_from(std::iter::once("agnas").chain(argv.iter().copied()))?;
    let space = registry::space(space);
    let text = match &cli.command {
        Command::Search(a) => space.configuration(Configuration::Search, &a.origin.recipe(&a.run, &a.settings.given)),
        Command::Train(a) => space.configuration(Configuration::Retrain, &a.recipe()),
        Command::Baseline(BaselineCommand::Random(a)) => {
            space.configuration(Configuration::Random, &a.origin.recipe(&a.run, &a.settings.given))
        }
        // `rederive` lays them over the search's configuration as it lays them over this preset.
        Command::Genotype(models::GenotypeCommand::Derive { derive, .. }) => {
            space.configuration(Configuration::Search, &Recipe::preset(Preset::Smoke, &derive.given))
        }
        Command::Eval(a) => space.paper_network(&a.network.given),
        Command::Params(a) => space.paper_network(&a.of.network.given),
        Command::Export(a) => space.paper_network(&a.of.network.given),
        Command::Bench(bench::BenchCommand::Step(a)) => {
            space.configuration(Configuration::Search, &Recipe::preset(Preset::Paper, &a.shape.given))
        }
        _ => anyhow::bail!("this command sets no configuration"),
    }?;
    Ok(text.parse()?)
}

/// A value for the row's flag and what it must set, different from `before` where the flag can differ from it.
fn pick(row: &Row, before: Option<&toml::Value>) -> (Option<&'static str>, toml::Value) {
    let texts: &[&'static str] = match row.setting.kind {
        Kind::Switch(_) => return (None, row.setting.value("").unwrap()),
        Kind::Int => &["4", "6"],
        Kind::Float => &["0.375", "0.625"],
        Kind::Share | Kind::Fraction | Kind::Complement => &["0.375", "0.25"],
        Kind::Path => &["some/where.json", "else.json"],
        Kind::Named { values, .. } => values,
    };
    let values = texts.iter().map(|t| (Some(*t), row.setting.value(t).unwrap()));
    let mut values: Vec<_> = values.collect();
    let differs = values.iter().position(|(_, v)| Some(v) != before).unwrap_or(0);
    values.swap_remove(differs)
}

/// Every settings flag of every command sets its key, in every space whose table has it, to the value given; a
/// space without it refuses it naming the flag; and every flag changes the configuration of at least one space (a
/// switch may already be on in some presets). A declared flag that sets nothing fails here.
#[test]
fn every_settings_flag_sets_its_key_where_its_space_has_it_and_is_refused_elsewhere() {
    let mut walked = 0;
    for command in commands() {
        for row in &command.rows {
            let flag = format!("--{}", row.setting.flag);
            let mut changed = Vec::new();
            for space in SpaceName::all() {
                let has = row.spaces.is_empty() || row.spaces.iter().any(|(n, _)| *n == space);
                let base = (command.argv)(space.as_str());
                let before = resolve(&base, space).unwrap_or_else(|e| panic!("{} in {space}: {e:#}", command.path));
                let before = config::lookup(&before, &row.key).cloned();
                let (text, want) = pick(row, before.as_ref());
                let argv: Vec<&str> = base.iter().copied().chain(std::iter::once(flag.as_str())).chain(text).collect();
                let what = format!("agnas {}", argv.join(" "));
                match resolve(&argv, space) {
                    Ok(after) if has => {
                        assert_eq!(config::lookup(&after, &row.key), Some(&want), "{what}: {}", row.key);
                        if before.as_ref() != Some(&want) {
                            changed.push(space);
                        }
                    }
                    Ok(_) => panic!("{what}: {space} has no {flag}, but it was taken"),
                    Err(e) if has => panic!("{what}: {e:#}"),
                    Err(e) => assert!(format!("{e:#}").contains(&flag), "{what}: {e:#}"),
                }
            }
            assert!(!changed.is_empty(), "agnas {} {flag} changes the configuration of no space", command.path);
            walked += 1;
        }
    }
    assert!(walked >= 60, "walked {walked} settings flags");
}

/// Flags of the commands that are no configuration key, and what shows their effect (a test, or the output itself).
const BEHAVIOUR: &[(&str, &[&str], &str)] = &[
    (
        RUNS,
        &["space", "preset", "data", "config"],
        "where the configuration starts: spaces.rs, cli.rs, and the walk above",
    ),
    (
        RUNS,
        &["out", "resume", "stop_after_steps"],
        "the run folder and its resumption: cli.rs, darts.rs, confidence.rs",
    ),
    ("search|train", &["dist", "dist_timeout"], "the ranks: dist.rs"),
    (RUNS, &["genotype"], "the genotype trained: darts.rs, spaces.rs (resolved in the walk's command line)"),
    (RUNS, &["seeds"], "one search per seed: confidence.rs several_seeds_…"),
    (RUNS, &["print_config"], "cli.rs print_config_is_the_configuration_a_run_would_write"),
    (RUNS, &["budget_of"], "a search's time as the budget: confidence.rs random_baseline_takes_the_budget_of_a_search"),
    ("eval", &["run", "data", "format", "split", "space", "genotype", "batch_size"], "darts.rs, spaces.rs, cli.rs"),
    ("eval", &["resize", "crop", "device", "threads", "memory_format"], "the evaluation pass: cli.rs, spaces.rs"),
    ("eval", &["precision"], "spaces.rs: bf16 scores within its rounding of fp32"),
    (NETWORKS, &["run", "to", "out", "force", "batch_size", "fold_bn", "seed"], "export_report.rs"),
    (NETWORKS, &["space", "genotype", "num_classes", "image_size"], "spaces.rs, proxyless.rs, darts.rs"),
    ("genotype show", &["genotype", "to", "space"], "darts.rs, spaces.rs"),
    ("genotype plot", &["genotype", "out", "importances", "space"], "the pictures written: spaces.rs"),
    ("genotype plot", &["force"], "export_report.rs a_retrained_run_reports_and_exports_both_ways"),
    ("genotype derive", &["run", "out"], "the derivation again: proxyless.rs one_search_gives_the_whole_budget_front"),
    ("genotype derive", &["force"], "proxyless.rs one_search_gives_the_whole_budget_front"),
    ("bench201 query", &["arch"], "cli.rs bench201_query_…"),
    (
        BENCH,
        &["space", "steps", "warmup", "iters", "batch_size", "image_size", "channels", "loader", "forward_only"],
        "printed in the timing line: cli.rs bench_…",
    ),
    (BENCH, &["dist", "threads", "device", "memory_format", "precision"], "printed in the timing line: cli.rs bench_…"),
    (
        "bench loader",
        &["data", "image_size", "eval", "resize", "workers", "batch_size", "batches"],
        "cli.rs bench_loader_…",
    ),
    ("bench allreduce", &["elements", "rounds", "dist"], "printed in the timing line; dist.rs"),
    (
        "latency-table",
        &["space", "device", "image_size", "width_mult", "num_classes", "batch_size", "threads"],
        "latency.rs",
    ),
    ("latency-table", &["repeats", "warmup", "out", "check", "seed", "memory_format"], "latency.rs"),
    ("launch", &["nproc", "port", "threads_per_rank", "command"], "dist.rs"),
    ("report", &["runs", "out", "force"], "export_report.rs"),
    ("", &["quiet", "verbose"], "the log level: cli.rs quiet_and_verbose_set_what_stderr_shows"),
];

/// Commands that start runs, whose flags beside the settings are alike.
const RUNS: &str = "search|train|baseline random";
/// Commands on one genotype's network.
const NETWORKS: &str = "export|params";
/// The timing commands of one supernet.
const BENCH: &str = "bench step|bench blocks";

/// Every command's flags, by command path.
fn all_flags(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments() {
        if !matches!(arg.get_id().as_str(), "help" | "version") {
            out.push((path.trim().to_string(), arg.get_id().to_string()));
        }
    }
    for sub in cmd.get_subcommands() {
        all_flags(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

/// A flag is either a setting from a table (walked above) or listed with what shows its effect: a flag added by hand
/// and forgotten fails here.
#[test]
fn every_other_flag_is_accounted_for() {
    let commands = commands();
    let mut flags = Vec::new();
    all_flags(&Cli::command(), "", &mut flags);
    let unaccounted: Vec<String> = flags
        .iter()
        .filter(|(path, id)| {
            let setting = commands.iter().any(|c| c.path == path && c.rows.iter().any(|r| r.id() == id.as_str()));
            let set = id == "set" && commands.iter().any(|c| c.path == path);
            let listed =
                BEHAVIOUR.iter().any(|(p, ids, _)| p.split('|').any(|p| p == path) && ids.contains(&id.as_str()));
            !setting && !set && !listed
        })
        .map(|(path, id)| format!("{path} {id}"))
        .collect();
    assert!(unaccounted.is_empty(), "flags that set no configuration and are not listed:\n{}", unaccounted.join("\n"));
    // And the list holds no flag that is gone.
    for (paths, ids, _) in BEHAVIOUR {
        for id in *ids {
            let known = flags.iter().any(|(p, i)| paths.split('|').any(|path| path == p) && i == id);
            assert!(known, "{paths} has no flag {id}");
        }
    }
}

#[test]
fn set_reaches_any_key_and_an_unknown_key_names_itself() {
    let c = resolve(
        &["search", "--preset", "smoke", "--set", "train.label_smoothing=0.1", "--set", "supernet.affine=true"],
        SpaceName::Nb201,
    )
    .unwrap();
    assert_eq!(config::lookup(&c, "train.label_smoothing"), Some(&toml::Value::Float(0.1)));
    assert_eq!(config::lookup(&c, "supernet.affine"), Some(&toml::Value::Boolean(true)));
    let err = format!("{:#}", resolve(&["search", "--set", "supernet.layerz=3"], SpaceName::Nb201).unwrap_err());
    assert!(err.contains("--set supernet.layerz=3") && err.contains("cells_per_stage"), "{err}");
    let err = format!(
        "{:#}",
        resolve(&["search", "--space", "proxyless", "--channels", "8"], SpaceName::Proxyless).unwrap_err()
    );
    assert!(err.contains("--channels") && err.contains("the proxyless space has no supernet.channels"), "{err}");
}

/// The bug this design removes: a latency budget given to `search` reaches the configuration it derives with.
/// `--until-decided` watches held-out passes: without `--heldout-every` it gets one per epoch instead of an error;
/// an explicit `--heldout-every` stands.
#[test]
fn until_decided_implies_a_heldout_pass_per_epoch() {
    let every = |argv: &[&str]| {
        let c = resolve(argv, SpaceName::Nb201).unwrap();
        config::lookup(&c, "importance.every").and_then(|v| v.as_integer())
    };
    assert_eq!(every(&["search", "--preset", "smoke", "--space", "nb201"]), Some(0));
    assert_eq!(every(&["search", "--preset", "smoke", "--until-decided", "0.9"]), Some(1));
    assert_eq!(every(&["search", "--preset", "smoke", "--until-decided", "0.9", "--heldout-every", "3"]), Some(3));
}

#[test]
fn a_search_takes_its_latency_budget() {
    let argv = [
        "search",
        "--space",
        "proxyless",
        "--preset",
        "smoke",
        "--max-latency-ms",
        "0.5",
        "--latency-table",
        "lat.json",
    ];
    let c = resolve(&argv, SpaceName::Proxyless).unwrap();
    assert_eq!(config::lookup(&c, "derive.max_latency_ms"), Some(&toml::Value::Float(0.5)));
    assert_eq!(config::lookup(&c, "derive.latency_table"), Some(&toml::Value::String("lat.json".into())));
}

/// Every flag of every command, with its command path, that has no description.
fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if !builtin && !arg.is_hide_set() && arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path} --{}", arg.get_long().unwrap_or(arg.get_id().as_str())));
        }
    }
    for sub in cmd.get_subcommands() {
        undescribed(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_flag_is_described_and_search_shows_the_presets_values() {
    let cmd = Cli::command();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    undescribed(&cmd, "agnas", &mut missing);
    assert!(missing.is_empty(), "flags without a description: {missing:?}");
    let search = cmd.find_subcommand("search").unwrap();
    let help = |id: &str| search.get_arguments().find(|a| a.get_id() == id).unwrap().get_help().unwrap().to_string();
    let (paper, embedded) = (Nb201::search_preset(Preset::Paper), Nb201::search_preset(Preset::Embedded));
    let epochs = help("epochs");
    let want = format!("nb201 paper {}, embedded {}", paper.train.epochs, embedded.train.epochs);
    assert!(epochs.contains(&want), "{epochs} names {want}");
    assert!(help("lr").contains(&format!("nb201 {}", paper.train.lr)), "{}", help("lr"));
    assert!(help("max-latency-ms").contains("[proxyless]"), "{}", help("max-latency-ms"));
}
