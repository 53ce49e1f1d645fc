//! Data-parallel runs through `agnas launch` (c10d over Gloo, one thread per rank): the ranks train as one process
//! with as many micro-batches would, resume, and fail clearly.
mod common;

use common::{agnas, json, run_ok};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tch::Tensor;

/// `agnas launch -n <ranks> -- <args>`.
fn launch(ranks: usize, args: &[&str]) -> Command {
    let mut cmd = agnas();
    cmd.args(["launch", "-n", &ranks.to_string(), "--threads-per-rank", "1", "--"]).args(args);
    cmd
}

fn search_args<'a>(space: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["search", "--space", space, "--preset", "smoke", "--threads", "1", "--dist-timeout", "60"];
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend(extra);
    args
}

/// The trained parameters of a run's newest checkpoint (not the batch-norm statistics: each rank keeps its own, as
/// PyTorch DDP's do, and rank 0's are the run's).
fn parameters(run: &Path) -> Vec<(String, Tensor)> {
    let dir = run.join("checkpoints");
    let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
    let mut params: Vec<(String, Tensor)> =
        Tensor::read_safetensors(dir.join(latest.trim()).join("weights.safetensors"))
            .unwrap()
            .into_iter()
            .filter(|(n, _)| !n.contains("running_") && !n.contains("num_batches_tracked"))
            .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `ranks` processes against one process with `ranks` micro-batches: the same global batches, split the same way,
/// so the same parameters up to summation order after every step of the run (`extra`: more flags for both).
fn ranks_match_micro_batches(space: &str, ranks: usize, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (many, one) = (dir.path().join("ranks"), dir.path().join("one"));
    run_ok(&mut launch(ranks, &search_args(space, &many, extra)));
    let micro = ranks.to_string();
    let mut single = vec!["--micro-batches", &micro];
    single.extend(extra);
    run_ok(agnas().args(search_args(space, &one, &single)));
    let (a, b) = (parameters(&many), parameters(&one));
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        let diff = (x - y).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{space}, {ranks} ranks: {name} differs by {diff}");
    }
    for (m, n) in metrics(&many).iter().zip(metrics(&one)) {
        let (x, y) = (m["train_loss"].as_f64().unwrap(), n["train_loss"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-5 * y.abs(), "{space}: train loss {x} against {y}");
        assert_eq!(m["train_acc"], n["train_acc"]);
    }
    // Only rank 0 wrote: one run folder, complete.
    assert!(many.join("result.json").exists() && many.join("summary.md").exists());
}

#[test]
fn four_ranks_train_the_nb201_supernet_as_one_process_with_four_micro_batches() {
    // Three steps of 8 images per rank: batch norm over so few images amplifies the all-reduce's other summation
    // order about 30-fold per step (1e-7 after three steps, 2e-5 after six; measured with 4 images: 7e-9, 3e-8, 1e-6).
    ranks_match_micro_batches("nb201", 4, &["--batch-size", "32", "--epochs", "1"]);
}

#[test]
fn two_ranks_train_the_darts_supernet_as_one_process_with_two_micro_batches() {
    // Two ranks sum in the one order there is: the parameters are the same to the bit.
    ranks_match_micro_batches("darts", 2, &[]);
}

#[test]
fn a_stopped_distributed_search_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, stopped) = (dir.path().join("straight"), dir.path().join("stopped"));
    run_ok(&mut launch(2, &search_args("nb201", &straight, &["--checkpoint-every", "2"])));
    let out = launch(2, &search_args("nb201", &stopped, &["--checkpoint-every", "2", "--stop-after-steps", "7"]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped after 7 steps"));
    let stopped_str = stopped.to_str().unwrap();
    run_ok(&mut launch(2, &["search", "--resume", stopped_str]));
    let strip = |mut rows: Vec<Value>| {
        rows.iter_mut().for_each(|r| {
            r.as_object_mut().unwrap().remove("seconds");
        });
        rows
    };
    assert_eq!(strip(metrics(&stopped)), strip(metrics(&straight)));
    assert_eq!(json(&stopped.join("importances.json")), json(&straight.join("importances.json")));
    assert_eq!(json(&stopped.join("result.json"))["arch"], json(&straight.join("result.json"))["arch"]);
    for ((name, x), (_, y)) in parameters(&stopped).iter().zip(parameters(&straight)) {
        assert!(x.equal(&y), "{name}: the resumed run's parameters are the straight run's");
    }

    // A stopped two-rank run resumed by one process: the global batches and the schedule go on where they stopped
    // (the numbers after the stop differ only by the batch-norm statistics of one batch instead of two halves).
    let again = dir.path().join("again");
    let out = launch(2, &search_args("nb201", &again, &["--checkpoint-every", "2", "--stop-after-steps", "7"]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    run_ok(agnas().args(["search", "--resume", again.to_str().unwrap()]));
    let (rows, straight_rows) = (strip(metrics(&again)), strip(metrics(&straight)));
    assert_eq!(rows.len(), straight_rows.len());
    assert_eq!(rows[0], straight_rows[0], "the epoch finished before the stop");
    assert!(again.join("result.json").exists());
}

#[test]
fn distributed_retrains_match_micro_batches() {
    // The DARTS network trains with drop-path and the auxiliary head: the masks depend on the part of the batch, not
    // on the rank that trains it.
    let nb201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|";
    for (space, genotype) in [("nb201", nb201), ("darts", "agnas")] {
        let dir = tempfile::tempdir().unwrap();
        let (many, one) = (dir.path().join("ranks"), dir.path().join("one"));
        let train = |out: &Path| -> Vec<String> {
            let args = ["train", "--space", space, "--preset", "smoke", "--genotype", genotype, "--threads", "1"];
            let mut args: Vec<String> = args.into_iter().map(String::from).collect();
            args.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
            args
        };
        let many_args = train(&many);
        run_ok(&mut launch(2, &many_args.iter().map(String::as_str).collect::<Vec<_>>()));
        run_ok(agnas().args(train(&one)).args(["--micro-batches", "2"]));
        let (a, b) = (json(&many.join("result.json")), json(&one.join("result.json")));
        assert_eq!(a["params"], b["params"]);
        for ((name, x), (_, y)) in parameters(&many).iter().zip(parameters(&one)) {
            let diff = (x - &y).abs().max().double_value(&[]);
            assert!(diff <= 1e-5, "{space} retrain: {name} differs by {diff}");
        }
    }
}

#[test]
fn an_error_on_rank_0_ends_every_rank_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-images");
    let out = dir.path().join("run");
    let mut args = search_args("nb201", &out, &[]);
    let missing = missing.to_str().unwrap();
    args.extend(["--data", missing]);
    let started = Instant::now();
    let result = launch(2, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("no-such-images"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "no rank waits for the timeout: {:?}", started.elapsed());
}

/// The local addresses listening on TCP `port` (IPv4 and IPv6, from /proc/net), as the kernel writes them.
fn listeners(port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| {
            let rows: Vec<Vec<String>> =
                table.lines().skip(1).map(|l| l.split_whitespace().map(String::from).collect()).collect();
            rows.into_iter().filter(|r| r.len() > 3 && r[3] == "0A" && r[1].ends_with(&port)).map(|r| r[1].clone())
        })
        .collect()
}

/// `agnas launch` gives its ranks MASTER_ADDR=127.0.0.1: the unauthenticated rendezvous store listens there only,
/// not on every interface.
#[test]
fn a_one_machine_launch_listens_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = agnas();
    cmd.args(["launch", "-n", "2", "--threads-per-rank", "1", "--port", &port.to_string(), "--"]);
    cmd.args(search_args("nb201", &out, &["--epochs", "500"]));
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while !out.join("metrics.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the ranks never started training");
        std::thread::sleep(Duration::from_millis(100));
    }
    let listening = listeners(port);
    let ranks = Command::new("pgrep").args(["-P", &child.id().to_string()]).output().unwrap();
    for pid in String::from_utf8_lossy(&ranks.stdout).split_whitespace() {
        Command::new("kill").args(["-9", pid]).status().unwrap();
    }
    let _ = child.wait_with_output();
    assert_eq!(listening, vec![format!("0100007F:{port:04X}")], "the store listens on 127.0.0.1 only");
}

#[test]
fn a_killed_rank_ends_the_launch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let child = launch(2, &search_args("nb201", &out, &["--epochs", "500"]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the ranks train (the run folder has its first checkpoint), kill rank 1.
    let started = Instant::now();
    while !out.join("metrics.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the ranks never started training");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ranks = Command::new("pgrep").args(["-P", &child.id().to_string()]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&ranks.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(pids.len(), 2, "two ranks under the launcher");
    Command::new("kill").args(["-9", &pids[1]]).status().unwrap();
    let killed = Instant::now();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("rank 1 ended with signal: 9"), "{stderr}");
    assert!(killed.elapsed() < Duration::from_secs(20), "{:?}", killed.elapsed());
}

#[test]
#[ignore = "needs Open MPI and agnas built with `--features agnas/mpi` (AGNAS_MPI_BIN): make test runs it"]
fn mpi_ranks_train_as_micro_batches() {
    let bin = std::env::var("AGNAS_MPI_BIN").expect("AGNAS_MPI_BIN names the agnas built with the mpi feature");
    for (ranks, extra) in [(2, vec![]), (4, vec!["--batch-size", "32", "--epochs", "1"])] {
        let dir = tempfile::tempdir().unwrap();
        let (many, one) = (dir.path().join("mpi"), dir.path().join("one"));
        let mut mpirun = Command::new("mpirun");
        mpirun
            .args(["-np", &ranks.to_string(), "--oversubscribe", "-x", "OMP_NUM_THREADS=1", "-x", "RUST_LOG=warn"])
            .arg(&bin)
            .args(search_args("nb201", &many, &extra))
            .args(["--dist", "mpi"])
            // CI runs as root, which Open MPI refuses without these.
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        run_ok(&mut mpirun);
        let micro = ranks.to_string();
        let mut single = vec!["--micro-batches", micro.as_str()];
        single.extend(&extra);
        run_ok(Command::new(&bin).args(search_args("nb201", &one, &single)));
        for ((name, x), (_, y)) in parameters(&many).iter().zip(parameters(&one)) {
            let diff = (x - &y).abs().max().double_value(&[]);
            assert!(diff <= 1e-5, "MPI, {ranks} ranks: {name} differs by {diff}");
        }
        assert!(many.join("result.json").exists());
    }
}
