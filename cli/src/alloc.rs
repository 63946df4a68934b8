//! The process's allocator policy.

/// Makes glibc's `malloc` keep freed memory for reuse instead of handing every large
/// block back to the kernel. By default blocks above 128 KiB are `mmap`ped and
/// `munmap`ped one by one, so each of the many large temporary tensors of a training
/// step costs fresh page faults and kernel page zeroing (measured: 10-20% of a CPU
/// training step of a 5M-parameter model). With these settings blocks below 1 GiB come
/// from the heap and up to 1 GiB of free heap is kept. No effect on other C libraries.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const GIB: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes malloc's tuning parameters; it is called before
        // any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, GIB);
            libc::mallopt(libc::M_TRIM_THRESHOLD, GIB);
            libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        }
    }
}
