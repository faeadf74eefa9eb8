fn main() -> std::process::ExitCode {
    bound_malloc_arenas();
    cutover::cli::main()
}

/// glibc's malloc gives each thread that allocates its own arena, up to
/// eight per core; cutover's tokio workers and hashing threads each take
/// one, and memory freed in one arena is not reused by another. Two arenas
/// (the machine's two cores in CI) took a 50,000-file deploy's peak RSS
/// from 169 to 130 MB cold and from 162 to 148 MB unchanged, at the same
/// speed (BENCHMARKS.md, "Scale").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc_arenas() {
    // SAFETY: mallopt only sets a malloc tunable; it runs first in main,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}
