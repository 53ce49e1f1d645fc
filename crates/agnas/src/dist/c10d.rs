//! libtorch's c10d process groups through `csrc/c10d.cpp`: the TCPStore rendezvous, then Gloo or NCCL.
use super::{Collective, DistError, Membership, Result};
use std::ffi::{c_char, c_int, CStr, CString};
use std::time::Duration;
use tch::Tensor;

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

/// tch's tensor handle is a `torch::Tensor*` (torch-sys's `C_tensor`), which the bridge takes as `at::Tensor*`.
type RawTensor = *const std::ffi::c_void;

extern "C" {
    fn agnas_c10d_free_message(message: *mut c_char);
    fn agnas_c10d_new(
        backend: *const c_char,
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        iface: *const c_char,
        err: *mut *mut c_char,
    ) -> *mut RawGroup;
    fn agnas_c10d_free(group: *mut RawGroup);
    fn agnas_c10d_all_reduce_sum(
        group: *mut RawGroup,
        tensors: *const RawTensor,
        n: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn agnas_c10d_broadcast(
        group: *mut RawGroup,
        tensors: *const RawTensor,
        n: c_int,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn agnas_c10d_barrier(group: *mut RawGroup, err: *mut *mut c_char) -> c_int;
    fn agnas_c10d_peers(group: *mut RawGroup, beats: *mut i64, entered: *mut i64, err: *mut *mut c_char) -> c_int;
}

/// A c10d process group of this process's rank, with the rendezvous it came from.
pub(super) struct C10d {
    group: *mut RawGroup,
    rank: usize,
    world: usize,
    backend: &'static str,
    rendezvous: String,
}

// The process group is used from one thread at a time (the training loop's), and c10d's objects may move between
// threads.
unsafe impl Send for C10d {}
unsafe impl Sync for C10d {}

/// The bridge's error message, freed.
fn take_message(err: *mut c_char) -> String {
    if err.is_null() {
        return "unknown error".to_string();
    }
    let text = unsafe { CStr::from_ptr(err) }.to_string_lossy().split_whitespace().collect::<Vec<_>>().join(" ");
    unsafe { agnas_c10d_free_message(err) };
    text
}

impl C10d {
    pub(super) fn connect(backend: &'static str, who: &Membership, timeout: Duration) -> crate::Result<Self> {
        let c = |s: &str| CString::new(s).map_err(|_| crate::Error::Message(format!("{s:?} holds a NUL byte")));
        let (name, host, iface) = (c(backend)?, c(&who.master_addr)?, c(who.interface.as_deref().unwrap_or(""))?);
        let rendezvous = format!("{}:{}", who.master_addr, who.master_port);
        let mut err = std::ptr::null_mut();
        let group = unsafe {
            agnas_c10d_new(
                name.as_ptr(),
                host.as_ptr(),
                c_int::from(who.master_port),
                who.rank as c_int,
                who.world as c_int,
                timeout.as_millis() as i64,
                iface.as_ptr(),
                &mut err,
            )
        };
        if group.is_null() {
            return Err(DistError::Setup(format!(
                "rank {} of {} could not join the rendezvous at {rendezvous} within {:.0} s ({backend}; check \
                 MASTER_ADDR and MASTER_PORT, that rank 0 runs, and that every rank was given the same WORLD_SIZE): {}",
                who.rank,
                who.world,
                timeout.as_secs_f64(),
                take_message(err)
            ))
            .into());
        }
        Ok(C10d { group, rank: who.rank, world: who.world, backend, rendezvous })
    }

    /// A failed collective's error, naming the peers that died (their heartbeat stopped) or hang elsewhere (they
    /// never reached this collective).
    fn failure(&self, what: &str, detail: String) -> DistError {
        let list = |ranks: &[usize]| ranks.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        let detail = match self.peers() {
            Ok((dead, _)) if !dead.is_empty() => {
                format!("{what} failed: rank(s) {} died (their heartbeat stopped): {detail}", list(&dead))
            }
            Ok((_, behind)) if !behind.is_empty() => format!(
                "{what} failed: rank(s) {} are alive but never reached it (hung, or running other code): {detail}",
                list(&behind)
            ),
            Ok(_) => format!("{what} failed: {detail}"),
            Err(_) => format!(
                "{what} failed, and rank 0, which serves the rendezvous at {}, is gone (died or unreachable): {detail}",
                self.rendezvous
            ),
        };
        if self.rank == 0 {
            // The store lives in this process: keep it up a little, so that the other ranks can tell who stopped.
            std::thread::sleep(Duration::from_millis(1500));
        }
        DistError::Collective { rank: self.rank, detail }
    }

    /// (dead, behind): the peers whose heartbeat did not move over one second, and those that had entered fewer
    /// collectives than this rank.
    fn peers(&self) -> std::result::Result<(Vec<usize>, Vec<usize>), String> {
        let (before, _) = self.beats()?;
        std::thread::sleep(Duration::from_millis(1000));
        let (after, entered) = self.beats()?;
        let others = || (0..self.world).filter(|&r| r != self.rank);
        let dead = others().filter(|&r| before[r] == after[r]).collect();
        let behind = others().filter(|&r| entered[r] < entered[self.rank]).collect();
        Ok((dead, behind))
    }

    fn beats(&self) -> std::result::Result<(Vec<i64>, Vec<i64>), String> {
        let (mut beats, mut entered) = (vec![0i64; self.world], vec![0i64; self.world]);
        let mut err = std::ptr::null_mut();
        match unsafe { agnas_c10d_peers(self.group, beats.as_mut_ptr(), entered.as_mut_ptr(), &mut err) } {
            0 => Ok((beats, entered)),
            _ => Err(take_message(err)),
        }
    }

    fn check(&self, what: &str, status: c_int, err: *mut c_char) -> Result<()> {
        match status {
            0 => Ok(()),
            _ => Err(self.failure(what, take_message(err))),
        }
    }
}

fn raw(tensors: &[Tensor]) -> Result<Vec<RawTensor>> {
    for t in tensors {
        if !t.is_contiguous() {
            return Err(DistError::Setup("c10d collectives take contiguous tensors".into()));
        }
    }
    Ok(tensors.iter().map(|t| t.as_ptr() as RawTensor).collect())
}

impl Collective for C10d {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn engine(&self) -> String {
        match self.backend {
            "nccl" => "c10d/gloo+nccl".to_string(),
            other => format!("c10d/{other}"),
        }
    }

    fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<()> {
        let ptrs = raw(tensors)?;
        let mut err = std::ptr::null_mut();
        let status = unsafe { agnas_c10d_all_reduce_sum(self.group, ptrs.as_ptr(), ptrs.len() as c_int, &mut err) };
        self.check("an all-reduce", status, err)
    }

    fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<()> {
        let ptrs = raw(tensors)?;
        let mut err = std::ptr::null_mut();
        let status =
            unsafe { agnas_c10d_broadcast(self.group, ptrs.as_ptr(), ptrs.len() as c_int, root as c_int, &mut err) };
        self.check("a broadcast", status, err)
    }

    fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        let status = unsafe { agnas_c10d_barrier(self.group, &mut err) };
        self.check("a barrier", status, err)
    }
}

impl Drop for C10d {
    fn drop(&mut self) {
        unsafe { agnas_c10d_free(self.group) };
    }
}
