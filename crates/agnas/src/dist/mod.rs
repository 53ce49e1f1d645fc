//! Data parallelism on existing engines: a small collective interface ([`Collective`]) with a single-process
//! implementation (no cost), libtorch's c10d (Gloo on the CPU, NCCL on CUDA) and MPI; [`Dist`] is the handle the
//! training skeleton holds, with what runs need on top (buckets, bytes, agreement, a model's variables).
//!
//! Who is who comes from the launcher's environment ([`Membership`]): `torchrun` and `agnas launch` (`RANK`,
//! `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, `LOCAL_RANK`), `mpirun` (`OMPI_COMM_WORLD_*`, `PMI_*`) and Slurm's `srun`
//! (`SLURM_PROCID`, `SLURM_NTASKS`).
#[cfg(feature = "c10d")]
mod c10d;
mod env;
#[cfg(feature = "mpi")]
mod mpi;

pub use env::{launched_rank, DistChoice, Membership};

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// What went wrong between the ranks; every message names the rank it happened on.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// The ranks could not be joined (rendezvous, engine, launcher's environment).
    #[error("distributed setup: {0}")]
    Setup(String),
    /// A collective failed on `rank`: a peer died or hangs, or rank 0 is gone (the detail names them).
    #[error("rank {rank}: {detail}")]
    Collective { rank: usize, detail: String },
    /// Ranks that train in lockstep hold different bytes (a genotype, a configuration, the variables).
    #[error("rank {rank} of {world}: {detail}")]
    Disagree { rank: usize, world: usize, detail: String },
    /// Rank `root` failed (its error is `detail`), and so every other rank ends.
    #[error("rank {root} failed: {detail}")]
    Root { root: usize, detail: String },
}

pub type Result<T> = std::result::Result<T, DistError>;

/// The operations data parallelism needs from an engine. Tensors are changed in place and must be contiguous; every
/// rank makes the same calls in the same order with tensors of the same sizes and kinds.
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn world(&self) -> usize;
    /// The engine, for the log: `single`, `c10d/gloo`, `c10d/nccl`, `mpi`.
    fn engine(&self) -> String;
    /// Sums each tensor across the ranks.
    fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()>;
    /// Every rank's tensors take `root`'s values.
    fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()>;
    fn barrier(&self) -> Result<()>;
}

/// One process: every operation is the identity.
struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn world(&self) -> usize {
        1
    }
    fn engine(&self) -> String {
        "single".into()
    }
    fn all_reduce_sum(&self, _: &[Tensor]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _: &[Tensor], _: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// Bytes per all-reduce or broadcast when many small tensors travel together (PyTorch DDP's default bucket).
const BUCKET_BYTES: i64 = 25 << 20;

/// The ranks of a run and the engine between them; cheap to clone. With one rank every method returns at once.
#[derive(Clone)]
pub struct Dist {
    engine: Arc<dyn Collective>,
    /// The rank's index on its machine: the GPU it uses.
    local_rank: usize,
}

impl Default for Dist {
    fn default() -> Self {
        Dist { engine: Arc::new(Single), local_rank: 0 }
    }
}

impl fmt::Debug for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} of {} ({})", self.rank(), self.world(), self.engine.engine())
    }
}

/// How long a collective may wait for a peer before the run ends with an error naming it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

impl Dist {
    /// One process.
    pub fn single() -> Self {
        Dist::default()
    }

    /// Joins the ranks `choice` and the environment describe; one process when they describe none. With c10d, CPU
    /// tensors travel by Gloo, and CUDA tensors by NCCL when `device` is a GPU (by Gloo otherwise); with MPI, CPU
    /// tensors only.
    pub fn connect(choice: DistChoice, device: Device, timeout: Duration) -> crate::Result<Self> {
        let Some((engine, who)) = env::resolve(choice)? else {
            return Ok(Dist::single());
        };
        let engine = match engine {
            env::Engine::C10d => Self::c10d(&who, device, timeout)?,
            env::Engine::Mpi => Self::mpi(&who)?,
        };
        let dist = Dist { engine, local_rank: who.local_rank };
        tracing::info!("{dist:?}: {}", who.describe());
        Ok(dist)
    }

    #[cfg(feature = "c10d")]
    fn c10d(who: &Membership, device: Device, timeout: Duration) -> crate::Result<Arc<dyn Collective>> {
        let backend = if device.is_cuda() { "nccl" } else { "gloo" };
        Ok(Arc::new(c10d::C10d::connect(backend, who, timeout)?))
    }

    #[cfg(not(feature = "c10d"))]
    fn c10d(_: &Membership, _: Device, _: Duration) -> crate::Result<Arc<dyn Collective>> {
        crate::error::bail!("this agnas was built without the c10d engine (cargo feature `c10d`)")
    }

    #[cfg(feature = "mpi")]
    fn mpi(who: &Membership) -> crate::Result<Arc<dyn Collective>> {
        Ok(Arc::new(mpi::Mpi::connect(who)?))
    }

    #[cfg(not(feature = "mpi"))]
    fn mpi(_: &Membership) -> crate::Result<Arc<dyn Collective>> {
        crate::error::bail!("this agnas was built without MPI (cargo feature `mpi`): use --dist c10d")
    }

    /// An engine of the caller's own (tests, other launchers).
    pub fn from_collective(engine: Arc<dyn Collective>, local_rank: usize) -> Self {
        Dist { engine, local_rank }
    }

    pub fn rank(&self) -> usize {
        self.engine.rank()
    }

    pub fn world(&self) -> usize {
        self.engine.world()
    }

    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The device of this rank: its own GPU (`cuda:{local rank}`) where `device` is a GPU and there are several ranks.
    pub fn device(&self, device: Device) -> Device {
        match device {
            Device::Cuda(_) if self.world() > 1 => Device::Cuda(self.local_rank),
            other => other,
        }
    }

    /// Whether this rank writes the run folder and derives the architecture (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    pub fn barrier(&self) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        self.engine.barrier()
    }

    /// Sums the tensors across the ranks in place; small ones travel together in buckets of up to 25 MB.
    pub fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        if self.world() == 1 || tensors.is_empty() {
            return Ok(());
        }
        in_buckets(tensors, |flat| self.engine.all_reduce_sum(flat))
    }

    /// Every rank's tensors take `root`'s values, in buckets as [`Dist::all_reduce_sum`].
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        if self.world() == 1 || tensors.is_empty() {
            return Ok(());
        }
        in_buckets(tensors, |flat| self.engine.broadcast(flat, root))
    }

    /// `root`'s bytes on every rank.
    pub fn broadcast_bytes(&self, bytes: Vec<u8>, root: usize) -> Result<Vec<u8>> {
        if self.world() == 1 {
            return Ok(bytes);
        }
        let len = Tensor::from_slice(&[bytes.len() as i64]);
        self.engine.broadcast(std::slice::from_ref(&len), root)?;
        let len = len.int64_value(&[0]) as usize;
        let buf = if self.rank() == root {
            Tensor::from_slice(&bytes)
        } else {
            Tensor::zeros([len as i64], (Kind::Uint8, Device::Cpu))
        };
        self.engine.broadcast(std::slice::from_ref(&buf), root)?;
        let mut out = vec![0u8; len];
        buf.copy_data_u8(&mut out, len);
        Ok(out)
    }

    /// Rank 0's outcome on every rank: its value, or its error (as the error of every other rank, naming rank 0),
    /// so that a failure of the rank that reads and writes the run folder ends every rank at once.
    pub fn from_root<T: Serialize + DeserializeOwned>(&self, outcome: crate::Result<T>) -> crate::Result<T> {
        if self.world() == 1 {
            return outcome;
        }
        let message: std::result::Result<serde_json::Value, String> = match &outcome {
            Ok(v) if self.is_root() => Ok(serde_json::to_value(v)?),
            Ok(_) => Ok(serde_json::Value::Null),
            Err(e) => Err(e.report()),
        };
        let bytes = self.broadcast_bytes(serde_json::to_vec(&message)?, 0)?;
        let message: std::result::Result<serde_json::Value, String> = serde_json::from_slice(&bytes)?;
        match (message, self.is_root()) {
            (Ok(_), true) => outcome,
            (Ok(v), false) => Ok(serde_json::from_value(v)?),
            (Err(_), true) => outcome,
            (Err(detail), false) => Err(DistError::Root { root: 0, detail }.into()),
        }
    }

    /// Checks that every rank holds the same `bytes` (a genotype, a configuration): each compares its hash with rank
    /// 0's, and every rank learns which ranks differ.
    pub fn agree(&self, what: &str, bytes: &[u8]) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let hash = fnv1a(bytes) as i64;
        let theirs = Tensor::from_slice(&[hash]);
        self.engine.broadcast(std::slice::from_ref(&theirs), 0)?;
        let differs = Tensor::zeros([self.world() as i64], (Kind::Int64, Device::Cpu));
        if theirs.int64_value(&[0]) != hash {
            let _ = differs.get(self.rank() as i64).fill_(1);
        }
        self.engine.all_reduce_sum(std::slice::from_ref(&differs))?;
        let ranks: Vec<usize> = (0..self.world()).filter(|&r| differs.int64_value(&[r as i64]) != 0).collect();
        if ranks.is_empty() {
            return Ok(());
        }
        let list = ranks.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        Err(DistError::Disagree {
            rank: self.rank(),
            world: self.world(),
            detail: format!("the {what} of rank(s) {list} differs from rank 0's"),
        })
    }

    /// Every rank's variables (parameters and buffers, in name order) take rank 0's values.
    pub fn broadcast_vars(&self, vs: &VarStore) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let tensors: Vec<Tensor> = by_name(vs, |_| true).into_iter().map(|(_, t)| t).collect();
        tch::no_grad(|| self.broadcast(&tensors, 0))
    }

    /// Checks that every rank holds the same variables, bit for bit (they train in lockstep: a difference means a
    /// broken engine or a rank that ran other code); the error names the ranks that differ.
    pub fn check_same_vars(&self, vs: &VarStore) -> crate::Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (name, t) in by_name(vs, |_| true) {
            let t = t.detach().to_device(Device::Cpu).contiguous().reshape([-1]);
            let n = t.numel() * t.kind().elt_size_in_bytes();
            let mut bytes = vec![0u8; n];
            t.view_dtype(Kind::Uint8).copy_data_u8(&mut bytes, n);
            hash = fnv1a_from(hash, name.as_bytes());
            hash = fnv1a_from(hash, &bytes);
        }
        Ok(self.agree("parameters", &hash.to_le_bytes())?)
    }

    /// The buffers of a model (batch-norm statistics) take rank 0's values, so that every rank evaluates one network.
    pub fn broadcast_buffers(&self, vs: &VarStore) -> Result<()> {
        if self.world() == 1 {
            return Ok(());
        }
        let tensors: Vec<Tensor> = by_name(vs, |t| !t.requires_grad()).into_iter().map(|(_, t)| t).collect();
        tch::no_grad(|| self.broadcast(&tensors, 0))
    }
}

/// The variables of `vs` that `keep` accepts, in name order: the order every rank agrees on (the store's own order is
/// a hash map's).
fn by_name(vs: &VarStore, keep: impl Fn(&Tensor) -> bool) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| keep(t)).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// 64-bit FNV-1a: stable across processes and builds, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv1a_from(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Runs `op` on the tensors in flat buckets: tensors of one kind and device, at most [`BUCKET_BYTES`] together, copied
/// into one buffer and back; a contiguous tensor alone in its bucket travels as it is.
fn in_buckets(tensors: &[Tensor], op: impl Fn(&[Tensor]) -> Result<()>) -> Result<()> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    // Grouped by kind and device, stable within a group, so that every rank forms the same buckets.
    order.sort_by_key(|&i| (format!("{:?}", tensors[i].kind()), format!("{:?}", tensors[i].device())));
    let mut start = 0;
    while start < order.len() {
        let first = &tensors[order[start]];
        let (kind, device) = (first.kind(), first.device());
        let mut end = start;
        let mut bytes = 0;
        while end < order.len() {
            let t = &tensors[order[end]];
            let size = t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
            if t.kind() != kind || t.device() != device || (end > start && bytes + size > BUCKET_BYTES) {
                break;
            }
            bytes += size;
            end += 1;
        }
        let members: Vec<&Tensor> = order[start..end].iter().map(|&i| &tensors[i]).collect();
        tch::no_grad(|| -> Result<()> {
            if let [only] = members[..] {
                if only.is_contiguous() {
                    return op(std::slice::from_ref(only));
                }
            }
            let flat = Tensor::cat(&members.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0);
            op(std::slice::from_ref(&flat))?;
            let mut offset = 0;
            for t in members {
                let n = t.numel() as i64;
                let mut t = t.shallow_clone();
                t.copy_(&flat.narrow(0, offset, n).view_as(&t));
                offset += n;
            }
            Ok(())
        })?;
        start = end;
    }
    Ok(())
}
