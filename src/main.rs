//! The `mailbox` binary: parse the command line and hand over to the CLI module.

/// mimalloc instead of glibc malloc: the broker allocates many small, short-lived buffers per
/// request, and glibc's allocator showed up as ~20% of CPU in `perf` under `bench send-rest`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(mailbox::cli::main());
}
