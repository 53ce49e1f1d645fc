//! Who this process is among the ranks, read from the environment its launcher set.
use crate::error::{bail, Context, Result};
use std::collections::HashMap;

/// `--dist`: which engine joins the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, strum::EnumString, strum::Display, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum DistChoice {
    /// c10d under `torchrun`, `agnas launch` or Slurm; MPI under `mpirun` when built with it (else c10d, its ranks
    /// read from MPI's environment); one process otherwise.
    #[default]
    Auto,
    /// One process, whatever the environment says.
    None,
    C10d,
    Mpi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Engine {
    C10d,
    Mpi,
}

/// This process's place among the ranks, and where rank 0 serves the rendezvous (c10d).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub rank: usize,
    pub world: usize,
    /// The rank's index on its machine: its GPU.
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// The network interface Gloo binds to (`GLOO_SOCKET_IFNAME`), if set.
    pub interface: Option<String>,
    /// Which convention described the ranks.
    pub source: &'static str,
}

impl Membership {
    pub fn describe(&self) -> String {
        format!(
            "ranks from {} (local rank {}), rendezvous at {}:{}",
            self.source, self.local_rank, self.master_addr, self.master_port
        )
    }
}

/// This process's rank where a launcher started it as one of several (before any engine is joined: for the log).
pub fn launched_rank() -> Option<usize> {
    let env = std::env::vars().collect();
    membership(&env).ok().flatten().filter(|m| m.world > 1).map(|m| m.rank)
}

/// The port of `torchrun`'s default rendezvous.
const DEFAULT_PORT: u16 = 29500;

/// The engine and the membership `choice` means in this environment; `None` for one process.
pub(super) fn resolve(choice: DistChoice) -> Result<Option<(Engine, Membership)>> {
    resolve_in(choice, &std::env::vars().collect())
}

fn resolve_in(choice: DistChoice, env: &HashMap<String, String>) -> Result<Option<(Engine, Membership)>> {
    let found = membership(env)?;
    let engine = match (choice, &found) {
        (DistChoice::None, _) => return Ok(None),
        (DistChoice::Auto, None) => return Ok(None),
        (DistChoice::Auto, Some(m)) if m.world == 1 => return Ok(None),
        (DistChoice::Auto, Some(m)) if m.source == "mpirun" && cfg!(feature = "mpi") => Engine::Mpi,
        (DistChoice::Auto | DistChoice::C10d, Some(_)) => Engine::C10d,
        (DistChoice::Mpi, _) => Engine::Mpi,
        (DistChoice::C10d, None) => bail!(
            "--dist c10d: no ranks in the environment (RANK and WORLD_SIZE, as torchrun and `agnas launch` set them, \
             or mpirun's or srun's)"
        ),
    };
    let who = match found {
        Some(m) => m,
        // MPI knows its own ranks; the membership then only describes the launch.
        None => Membership {
            rank: 0,
            world: 1,
            local_rank: 0,
            master_addr: String::new(),
            master_port: 0,
            interface: None,
            source: "MPI",
        },
    };
    Ok(Some((engine, who)))
}

/// The first convention the environment follows: torchrun's, then Open MPI's or PMI's, then Slurm's.
fn membership(env: &HashMap<String, String>) -> Result<Option<Membership>> {
    let conventions: [(&'static str, &str, &str, &[&str]); 4] = [
        ("RANK and WORLD_SIZE (torchrun, agnas launch)", "RANK", "WORLD_SIZE", &["LOCAL_RANK"]),
        ("mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", &["OMPI_COMM_WORLD_LOCAL_RANK"]),
        ("mpirun", "PMI_RANK", "PMI_SIZE", &["MPI_LOCALRANKID", "PMI_LOCAL_RANK"]),
        ("srun", "SLURM_PROCID", "SLURM_NTASKS", &["SLURM_LOCALID"]),
    ];
    for (source, rank_var, world_var, local_vars) in conventions {
        let (Some(rank), Some(world)) = (env.get(rank_var), env.get(world_var)) else {
            continue;
        };
        let number = |var: &str, text: &str| -> Result<usize> {
            text.trim().parse().with_context(|| format!("{var}={text:?} is not a number"))
        };
        let (rank, world) = (number(rank_var, rank)?, number(world_var, world)?);
        if world == 0 || rank >= world {
            bail!("{rank_var}={rank} with {world_var}={world}: the rank must be below the world size");
        }
        let local_rank = match local_vars.iter().find_map(|v| env.get(*v).map(|t| (*v, t))) {
            Some((var, text)) => number(var, text)?,
            None => rank,
        };
        let master_port = match env.get("MASTER_PORT") {
            Some(p) => p.trim().parse().with_context(|| format!("MASTER_PORT={p:?} is not a port"))?,
            None => DEFAULT_PORT,
        };
        let master_addr = match env.get("MASTER_ADDR") {
            Some(a) => a.clone(),
            None if single_host(env) => "127.0.0.1".to_string(),
            None => bail!(
                "{world} ranks over several hosts: set MASTER_ADDR (and MASTER_PORT) to the address where rank 0 \
                 serves the rendezvous"
            ),
        };
        let interface = env.get("GLOO_SOCKET_IFNAME").filter(|s| !s.is_empty()).cloned();
        return Ok(Some(Membership { rank, world, local_rank, master_addr, master_port, interface, source }));
    }
    Ok(None)
}

/// Whether the launcher says that every rank runs on this machine.
fn single_host(env: &HashMap<String, String>) -> bool {
    ["SLURM_NNODES", "OMPI_COMM_WORLD_NODE_COUNT"].iter().all(|v| env.get(*v).is_none_or(|n| n.trim() == "1"))
        && ["LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE"].iter().zip(["WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"]).all(
            |(local, world)| match (env.get(*local), env.get(world)) {
                (Some(l), Some(w)) => l == w,
                _ => true,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn torchrun_and_launch_variables() {
        let e = env(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.2"),
            ("MASTER_PORT", "29611"),
        ]);
        let (engine, m) = resolve_in(DistChoice::Auto, &e).unwrap().unwrap();
        assert_eq!(engine, Engine::C10d);
        assert_eq!(
            (m.rank, m.world, m.local_rank, m.master_addr.as_str(), m.master_port),
            (3, 4, 1, "10.0.0.2", 29611)
        );
        assert!(resolve_in(DistChoice::None, &e).unwrap().is_none(), "--dist none wins over the environment");
    }

    #[test]
    fn slurm_and_open_mpi_variables() {
        let slurm = env(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2"), ("SLURM_LOCALID", "1"), ("SLURM_NNODES", "1")]);
        let (_, m) = resolve_in(DistChoice::Auto, &slurm).unwrap().unwrap();
        assert_eq!(
            (m.rank, m.world, m.master_addr.as_str(), m.master_port, m.source),
            (1, 2, "127.0.0.1", 29500, "srun")
        );
        let two_nodes = env(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "8"), ("SLURM_NNODES", "2")]);
        let err = resolve_in(DistChoice::Auto, &two_nodes).unwrap_err().to_string();
        assert!(err.contains("set MASTER_ADDR"), "{err}");
        let ompi =
            env(&[("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_LOCAL_RANK", "0")]);
        let (engine, m) = resolve_in(DistChoice::C10d, &ompi).unwrap().unwrap();
        assert_eq!((engine, m.world, m.source), (Engine::C10d, 2, "mpirun"));
    }

    #[test]
    fn one_process_and_bad_values() {
        assert!(resolve_in(DistChoice::Auto, &env(&[])).unwrap().is_none());
        assert!(resolve_in(DistChoice::Auto, &env(&[("RANK", "0"), ("WORLD_SIZE", "1")])).unwrap().is_none());
        let err = resolve_in(DistChoice::C10d, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("no ranks in the environment"), "{err}");
        let err = resolve_in(DistChoice::Auto, &env(&[("RANK", "2"), ("WORLD_SIZE", "2")])).unwrap_err().to_string();
        assert!(err.contains("RANK=2 with WORLD_SIZE=2"), "{err}");
        let err = resolve_in(DistChoice::Auto, &env(&[("RANK", "x"), ("WORLD_SIZE", "2")])).unwrap_err().to_string();
        assert!(err.contains("RANK=\"x\" is not a number"), "{err}");
    }
}
