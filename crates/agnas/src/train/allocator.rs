//! Host allocator settings for training on the CPU.
//!
//! libtorch's CPU tensors come from glibc `malloc`. With its defaults, freed blocks of a few MiB (one activation
//! of a supernet) are either unmapped (above the dynamic mmap threshold) or trimmed off the heap top, so the next
//! step maps them again and the kernel zero-fills every page: 5–10 % of a supernet step went to page faults and
//! page clearing. A train step frees and re-allocates the same sizes every time, so keeping freed memory in the
//! heap costs little and saves that work.

/// Keeps blocks up to 32 MiB (glibc's largest mmap threshold) on the heap and never trims it. Idempotent.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are within glibc's documented ranges.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}
