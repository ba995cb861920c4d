//! The `offboard` binary: the web console (`serve`, the default) and the command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread exists: glibc gives threads their own malloc arenas as they first
    // allocate, so this must come before the runtime starts its workers.
    tune_malloc();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(server::cli::run()),
        Err(e) => {
            eprintln!("offboard: could not start: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Two glibc malloc settings that keep memory flat on a large site (docs/benchmarks.md, "A
/// 50,000-user site"): at most 2 arenas (glibc's default is 8 per core; memory freed in one
/// thread's arena is not reused by another's, so a job start, whose work runs on other threads
/// than the preview's, stacked on top of the preview's freed memory), and a fixed 256 KiB
/// threshold above which blocks are mapped on their own (glibc raises the threshold after each
/// large free, so the next listings and row batches land in the arenas and stay resident).
/// Measured at 50,000 users: peak 167 MB without them, 115 MB with both. `MALLOC_ARENA_MAX` /
/// `MALLOC_MMAP_THRESHOLD_` in the environment still win.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ARENAS: libc::c_int = 2;
        const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
        // SAFETY: mallopt only changes allocator parameters; called before any other thread.
        unsafe {
            if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            }
            if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            }
        }
    }
}
