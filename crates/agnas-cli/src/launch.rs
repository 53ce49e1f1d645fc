//! `agnas launch -n N -- search …`: N processes of one data-parallel run on this machine, with the environment
//! `torchrun` would give them (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`).
//! It is a launcher, not an engine: the ranks join each other through c10d. Like torchrun, it ends the others when
//! one fails, forwards SIGINT and SIGTERM, and exits with the first failure's status.
use anyhow::{ensure, Context, Result};
use clap::Args;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct LaunchArgs {
    /// Processes (ranks) to start on this machine.
    #[arg(short = 'n', long)]
    nproc: usize,
    /// Port of the rendezvous on 127.0.0.1 (default: a free one).
    #[arg(long)]
    port: Option<u16>,
    /// CPU threads of libtorch per rank (OMP_NUM_THREADS; default: the cores shared among the ranks).
    #[arg(long)]
    threads_per_rank: Option<usize>,
    /// The agnas command every rank runs, after `--` (e.g. `-- search --space nb201 --threads 1`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// The signal to pass on to the ranks (0: none yet).
static FORWARD: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    FORWARD.store(signal, Ordering::SeqCst);
}

/// How long the other ranks get to end by themselves once one has failed, before they are killed.
const GRACE: Duration = Duration::from_secs(10);

pub fn run(args: &LaunchArgs) -> Result<ExitCode> {
    ensure!(args.nproc >= 1, "-n must be at least 1");
    let port = match args.port {
        Some(p) => p,
        None => free_port()?,
    };
    let exe = std::env::current_exe().context("finding the agnas executable")?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = args.threads_per_rank.unwrap_or((cores / args.nproc).max(1));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    let mut children: Vec<Child> = Vec::with_capacity(args.nproc);
    for rank in 0..args.nproc {
        let child = Command::new(&exe)
            .args(&args.command)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", args.nproc.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", args.nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("OMP_NUM_THREADS", threads.to_string())
            .spawn()
            .with_context(|| format!("starting rank {rank}"));
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children, libc::SIGTERM);
                return Err(e);
            }
        }
    }
    eprintln!("agnas launch: {} ranks, rendezvous at 127.0.0.1:{port}", args.nproc);
    let status = supervise(&mut children)?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}

/// Waits for every rank; the first failure ends the others (after [`GRACE`]) and is the launch's status.
fn supervise(children: &mut [Child]) -> Result<ExitStatus> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut failed: Option<(usize, ExitStatus, Instant)> = None;
    loop {
        let signal = FORWARD.swap(0, Ordering::SeqCst);
        if signal != 0 {
            stop_all(children, signal);
        }
        for (rank, child) in children.iter_mut().enumerate() {
            if statuses[rank].is_none() {
                statuses[rank] = child.try_wait().with_context(|| format!("waiting for rank {rank}"))?;
            }
        }
        if failed.is_none() {
            if let Some((rank, status)) =
                statuses.iter().enumerate().find_map(|(r, s)| s.filter(|s| !s.success()).map(|s| (r, s)))
            {
                eprintln!("agnas launch: rank {rank} ended with {status}; ending the other ranks");
                failed = Some((rank, status, Instant::now()));
                stop_all(children, libc::SIGTERM);
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if let Some((_, _, since)) = failed {
            if since.elapsed() > GRACE {
                stop_all(children, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(match failed {
        Some((_, status, _)) => status,
        None => statuses.into_iter().flatten().next().context("no rank ran")?,
    })
}

fn stop_all(children: &mut [Child], signal: libc::c_int) {
    for child in children.iter_mut() {
        if let Ok(None) = child.try_wait() {
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }
}

/// A port that was free a moment ago: bound on 127.0.0.1 by the system's choice, then released for rank 0's store.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}
