//! `derive_cell` against the official AGNAS `_parse` (the DARTS rule), through the fixture that
//! `tools/darts_parse_ref.py` writes from its NumPy transcription of `Darts_Search_Space/train_search.py`.
use agnas::space::darts::derive::derive_cell;
use agnas::space::darts::DartsOp;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    steps: usize,
    importance: Vec<Vec<f64>>,
    genotype: Vec<(DartsOp, usize)>,
    concat: Vec<usize>,
}

fn cases() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/darts_parse.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e} (regenerate with tools/darts_parse_ref.py, see tests/fixtures/README.md)", path.display())
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn derive_cell_matches_the_official_parse() {
    let cases = cases();
    assert!(cases.len() >= 200, "only {} cases in the fixture", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        assert_eq!(case.genotype.len(), 2 * case.steps, "case {}: fixture genotype length", case.name);
        match derive_cell(&case.importance, case.steps, false) {
            Ok(cell) if cell.ops == case.genotype && cell.concat == case.concat => {}
            Ok(cell) => failures.push(format!(
                "case {}: agnas {:?} concat {:?}, official {:?} concat {:?}",
                case.name, cell.ops, cell.concat, case.genotype, case.concat
            )),
            Err(e) => failures.push(format!("case {}: {e:#}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases disagree:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn the_fixture_covers_ties_none_and_all_step_counts() {
    let cases = cases();
    for steps in [2, 3, 4] {
        assert!(cases.iter().any(|c| c.steps == steps), "no case with {steps} steps");
    }
    // Exact ties between the best ops of two edges of one node, and `none` strictly largest on every edge.
    let none = DartsOp::None.index();
    let best =
        |row: &[f64]| row.iter().enumerate().filter(|&(k, _)| k != none).map(|(_, &v)| v).fold(f64::MIN, f64::max);
    let tied = cases.iter().filter(|c| c.importance.windows(2).any(|w| best(&w[0]) == best(&w[1]))).count();
    let none_max = cases
        .iter()
        .filter(|c| c.importance.iter().all(|r| r.iter().enumerate().all(|(k, &v)| k == none || v < r[none])))
        .count();
    assert!(tied >= 50 && none_max >= 20, "{tied} cases with tied edges, {none_max} with `none` largest");
}
