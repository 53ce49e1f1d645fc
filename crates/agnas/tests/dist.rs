//! The collectives between real processes: each test starts copies of this test executable as the ranks (2 or 4,
//! one thread each, a free port), which run the same test in worker mode and assert on their own; the test then checks
//! that every rank passed, within a time limit.
use agnas::dist::{Dist, DistChoice};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

/// Set in the ranks' environment: the test body runs as a rank.
const WORKER: &str = "AGNAS_DIST_TEST_WORKER";

fn is_worker() -> bool {
    std::env::var_os(WORKER).is_some()
}

/// This rank's connection, with a short timeout so that a failure ends the test rather than hangs it.
fn connect(timeout_s: u64) -> Dist {
    tch::set_num_threads(1);
    Dist::connect(DistChoice::C10d, Device::Cpu, Duration::from_secs(timeout_s)).expect("joining the ranks")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs test `name` as `world` ranks (each with `env` besides the rendezvous) and returns their outputs, in rank
/// order; a rank still running after `limit` is killed, which fails the test.
fn ranks(name: &str, world: usize, env: &[(&str, &str)], limit: Duration) -> Vec<Output> {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            Command::new(&exe)
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER, "1")
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("OMP_NUM_THREADS", "1")
                .envs(env.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
            if pids.iter().all(|&p| unsafe { libc_kill(p as i32, 0) } != 0) {
                return;
            }
        }
        for p in pids {
            unsafe { libc_kill(p as i32, 9) };
        }
    });
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let _ = watchdog.join();
    assert!(started.elapsed() < limit, "{name}: the ranks ran past {limit:?} and were killed");
    outputs
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// What a rank printed after `ERROR: `.
fn error_line(out: &str) -> Option<&str> {
    out.lines().find_map(|l| l.split_once("ERROR: ")).map(|(_, e)| e)
}

fn all_passed(name: &str, outputs: &[Output]) {
    for (rank, o) in outputs.iter().enumerate() {
        assert!(o.status.success(), "{name}: rank {rank} failed:\n{}", text(o));
    }
}

#[test]
fn all_reduce_and_broadcast_on_two_and_four_ranks() {
    if is_worker() {
        let dist = connect(30);
        let (rank, world) = (dist.rank() as f64, dist.world() as f64);
        let expected = world * (world + 1.0) / 2.0;
        // Odd sizes, one over a bucket (25 MB), and kinds the runs use.
        for n in [1, 3, (4 << 20) + 1, (7 << 20) + 3] {
            let t = Tensor::full([n], rank + 1.0, (Kind::Float, Device::Cpu));
            dist.all_reduce_sum(std::slice::from_ref(&t)).unwrap();
            assert_eq!(t.min().double_value(&[]), expected, "f32 × {n}");
            assert_eq!(t.max().double_value(&[]), expected, "f32 × {n}");
        }
        let many: Vec<Tensor> = (1..6)
            .map(|k| Tensor::full([k, 3], rank + k as f64, (Kind::Double, Device::Cpu)).transpose(0, 1))
            .collect();
        dist.all_reduce_sum(&many).unwrap();
        for (k, t) in (1..6).zip(&many) {
            let want = world * k as f64 + world * (world - 1.0) / 2.0;
            assert_eq!(t.min().double_value(&[]), want, "f64 bucket member {k} (not contiguous)");
        }
        let ints = Tensor::from_slice(&[rank as i64, 1]);
        dist.all_reduce_sum(std::slice::from_ref(&ints)).unwrap();
        assert_eq!(Vec::<i64>::try_from(&ints).unwrap(), [(world * (world - 1.0) / 2.0) as i64, world as i64]);
        let b = Tensor::full([5, 7], rank, (Kind::Float, Device::Cpu));
        dist.broadcast(std::slice::from_ref(&b), 1).unwrap();
        assert_eq!(b.max().double_value(&[]), 1.0, "rank 1's values");
        let bytes = dist.broadcast_bytes(format!("from rank {rank}").into_bytes(), 0).unwrap();
        assert_eq!(bytes, b"from rank 0");
        dist.barrier().unwrap();
        return;
    }
    for world in [2, 4] {
        let outputs = ranks("all_reduce_and_broadcast_on_two_and_four_ranks", world, &[], Duration::from_secs(120));
        all_passed("all-reduce", &outputs);
    }
}

#[test]
fn a_rank_that_differs_is_named_on_every_rank() {
    if is_worker() {
        let dist = connect(30);
        dist.agree("genotype", b"|nor_conv_3x3~0|").unwrap();
        let mine = if dist.rank() == 2 { "|skip_connect~0|" } else { "|nor_conv_3x3~0|" };
        let err = dist.agree("genotype", mine.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("the genotype of rank(s) 2 differs from rank 0's"), "{err}");
        // Parameters: the same seed gives the same values; one changed element is found.
        tch::manual_seed(7);
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let lin = tch::nn::linear(vs.root() / "fc", 4, 3, Default::default());
        dist.check_same_vars(&vs).unwrap();
        if dist.rank() == 1 {
            tch::no_grad(|| {
                let _ = lin.ws.get(0).get(0).g_add_scalar_(1e-7);
            });
        }
        let err = dist.check_same_vars(&vs).unwrap_err().to_string();
        assert!(err.contains("the parameters of rank(s) 1 differs"), "{err}");
        return;
    }
    let outputs = ranks("a_rank_that_differs_is_named_on_every_rank", 3, &[], Duration::from_secs(60));
    all_passed("agreement", &outputs);
}

#[test]
fn a_dead_peer_ends_the_others_with_its_rank() {
    if is_worker() {
        let dist = connect(20);
        dist.barrier().unwrap();
        if dist.rank() == 1 {
            std::process::exit(3);
        }
        std::thread::sleep(Duration::from_millis(500));
        let t = Tensor::ones([1000], (Kind::Float, Device::Cpu));
        let err = dist.all_reduce_sum(std::slice::from_ref(&t)).unwrap_err().to_string();
        println!("ERROR: {err}");
        return;
    }
    let started = Instant::now();
    let outputs = ranks("a_dead_peer_ends_the_others_with_its_rank", 3, &[], Duration::from_secs(60));
    assert_eq!(outputs[1].status.code(), Some(3));
    for rank in [0, 2] {
        let out = text(&outputs[rank]);
        assert!(outputs[rank].status.success(), "rank {rank}:\n{out}");
        let line = error_line(&out).unwrap_or_else(|| panic!("rank {rank}:\n{out}"));
        // Rank 2 may learn of it from rank 0's exit as well; both name rank 1 or rank 0's store.
        assert!(line.contains(&format!("rank {rank}: ")), "{line}");
        assert!(
            line.contains("rank(s) 1 died") || (rank == 2 && line.contains("rank 0, which serves the rendezvous")),
            "{line}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20), "well within the 20 s timeout: {:?}", started.elapsed());
}

#[test]
fn a_hung_peer_is_named_after_the_timeout() {
    if is_worker() {
        let dist = connect(3);
        dist.barrier().unwrap();
        if dist.rank() == 1 {
            // Alive (its heartbeat goes on) but somewhere else than the collective.
            std::thread::sleep(Duration::from_secs(8));
            return;
        }
        let t = Tensor::ones([10], (Kind::Float, Device::Cpu));
        let err = dist.all_reduce_sum(std::slice::from_ref(&t)).unwrap_err().to_string();
        assert!(err.contains("rank 0: an all-reduce failed: rank(s) 1 are alive but never reached it"), "{err}");
        return;
    }
    let outputs = ranks("a_hung_peer_is_named_after_the_timeout", 2, &[], Duration::from_secs(40));
    let out = text(&outputs[0]);
    assert!(outputs[0].status.success(), "rank 0:\n{out}");
}

#[test]
fn a_wrong_world_size_or_no_master_fails_the_rendezvous_clearly() {
    if is_worker() {
        let err = Dist::connect(DistChoice::C10d, Device::Cpu, Duration::from_secs(2)).unwrap_err().to_string();
        println!("ERROR: {err}");
        return;
    }
    // One process told that the world has two: rank 0 waits for a rank 1 that never comes.
    let port = free_port().to_string();
    for (rank, world) in [("0", "2"), ("1", "2")] {
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(&exe)
            .args(["a_wrong_world_size_or_no_master_fails_the_rendezvous_clearly", "--exact", "--nocapture"])
            .env(WORKER, "1")
            .env("RANK", rank)
            .env("WORLD_SIZE", world)
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .output()
            .unwrap();
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        let line = error_line(&out).unwrap_or_else(|| panic!("{out}"));
        assert!(
            line.contains(&format!("rank {rank} of 2 could not join the rendezvous at 127.0.0.1:{port} within 2 s")),
            "{line}"
        );
        assert!(line.contains("same WORLD_SIZE"), "{line}");
    }
}

/// Two "hosts" on one machine: network namespaces joined by a veth pair with private addresses, made and removed by
/// the test. Needs root and iproute2, so it is ignored by default; `make test` runs it where they are.
struct Hosts {
    names: [String; 2],
}

impl Hosts {
    /// The two namespaces, or why they could not be made.
    fn make() -> Result<Hosts, String> {
        let tag = std::process::id() % 100_000;
        let names = [format!("agnas-a{tag}"), format!("agnas-b{tag}")];
        let hosts = Hosts { names };
        let [a, b] = &hosts.names;
        let (va, vb) = (format!("agv{tag}a"), format!("agv{tag}b"));
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), a.clone()],
            vec!["netns".into(), "add".into(), b.clone()],
            vec!["link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b]
                .into_iter()
                .map(String::from)
                .collect(),
        ];
        for step in steps {
            ip(&step)?;
        }
        for (ns, dev, addr) in [(a, &va, "10.231.77.1/24"), (b, &vb, "10.231.77.2/24")] {
            for args in [
                vec!["-n", ns, "addr", "add", addr, "dev", dev],
                vec!["-n", ns, "link", "set", dev, "up"],
                vec!["-n", ns, "link", "set", "lo", "up"],
            ] {
                ip(&args.into_iter().map(String::from).collect::<Vec<_>>())?;
            }
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

fn ip(args: &[String]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("running ip: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())),
    }
}

#[test]
#[ignore = "needs root and iproute2 (network namespaces): make test runs it where `ip netns` works"]
fn two_hosts_in_network_namespaces() {
    if is_worker() {
        let dist = connect(30);
        let t = Tensor::full([1 << 20], dist.rank() as f64 + 1.0, (Kind::Float, Device::Cpu));
        dist.all_reduce_sum(std::slice::from_ref(&t)).unwrap();
        assert_eq!(t.min().double_value(&[]), 3.0);
        let from = dist.broadcast_bytes(format!("host of rank {}", dist.rank()).into_bytes(), 0).unwrap();
        assert_eq!(from, b"host of rank 0");
        return;
    }
    let hosts = Hosts::make().unwrap_or_else(|why| panic!("network namespaces are not available here: {why}"));
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let dev = format!("agv{}{}", std::process::id() % 100_000, ["a", "b"][rank]);
            Command::new("ip")
                .args(["netns", "exec", &hosts.names[rank]])
                .arg(&exe)
                .args(["two_hosts_in_network_namespaces", "--exact", "--ignored", "--nocapture"])
                .env(WORKER, "1")
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", "2")
                // Rank 0's host: reachable from the other namespace only over the veth pair.
                .env("MASTER_ADDR", "10.231.77.1")
                .env("MASTER_PORT", "29511")
                .env("GLOO_SOCKET_IFNAME", dev)
                .env("OMP_NUM_THREADS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    all_passed("two hosts", &outputs);
    assert!(started.elapsed() < Duration::from_secs(60));
}
