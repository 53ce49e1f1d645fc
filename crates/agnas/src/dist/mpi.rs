//! MPI (the `mpi` crate over the system's MPI library) for sites whose launcher is `mpirun` or `srun`. CPU tensors
//! only: Debian's Open MPI is not CUDA-aware, and NCCL (c10d) is the faster path for CUDA tensors anyway.
use super::{Collective, DistError, Membership, Result};
use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use tch::{Device, Kind, Tensor};

pub(super) struct Mpi {
    world: SimpleCommunicator,
    // Finalises MPI when dropped, after the communicator.
    _universe: mpi::environment::Universe,
}

// MPI is initialised with one calling thread (the training loop's); the handle only moves between threads.
unsafe impl Send for Mpi {}
unsafe impl Sync for Mpi {}

impl Mpi {
    pub(super) fn connect(who: &Membership) -> crate::Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| DistError::Setup("MPI was initialised before".into()))?;
        let world = universe.world();
        if who.source != "MPI" && (world.rank() as usize, world.size() as usize) != (who.rank, who.world) {
            return Err(DistError::Setup(format!(
                "MPI says rank {} of {}, the environment ({}) rank {} of {}",
                world.rank(),
                world.size(),
                who.source,
                who.rank,
                who.world
            ))
            .into());
        }
        Ok(Mpi { world, _universe: universe })
    }

    fn cpu(&self, t: &Tensor) -> Result<()> {
        if t.device() != Device::Cpu || !t.is_contiguous() {
            return Err(DistError::Collective {
                rank: self.rank(),
                detail: "MPI collectives take contiguous CPU tensors (use c10d/NCCL for CUDA)".into(),
            });
        }
        Ok(())
    }
}

/// The tensor's elements as a mutable slice of `T`.
///
/// # Safety
/// `t` is a contiguous CPU tensor whose elements are `T`s, and no other reference to its memory is used meanwhile.
// A tensor handle does not own its memory the way a Rust value does: in-place libtorch ops take `&Tensor` too.
#[allow(clippy::mut_from_ref)]
unsafe fn elements<T>(t: &Tensor) -> &mut [T] {
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, t.numel())
}

macro_rules! by_kind {
    ($self:ident, $t:ident, |$s:ident| $body:expr) => {
        match $t.kind() {
            Kind::Float => {
                let $s = unsafe { elements::<f32>($t) };
                $body
            }
            Kind::Double => {
                let $s = unsafe { elements::<f64>($t) };
                $body
            }
            Kind::Int64 => {
                let $s = unsafe { elements::<i64>($t) };
                $body
            }
            Kind::Int => {
                let $s = unsafe { elements::<i32>($t) };
                $body
            }
            Kind::Uint8 => {
                let $s = unsafe { elements::<u8>($t) };
                $body
            }
            other => {
                return Err(DistError::Collective {
                    rank: $self.rank(),
                    detail: format!("MPI collectives here take f32, f64, i64, i32 or u8 tensors, not {other:?}"),
                })
            }
        }
    };
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn world(&self) -> usize {
        self.world.size() as usize
    }

    fn engine(&self) -> String {
        "mpi".into()
    }

    fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        for t in tensors {
            self.cpu(t)?;
            // rsmpi has no MPI_IN_PLACE: the send side is a copy.
            by_kind!(self, t, |s| {
                let send = s.to_vec();
                self.world.all_reduce_into(&send[..], s, SystemOperation::sum());
            });
        }
        Ok(())
    }

    fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        let root = self.world.process_at_rank(root as i32);
        for t in tensors {
            self.cpu(t)?;
            by_kind!(self, t, |s| root.broadcast_into(s));
        }
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
}
