// Parsing and lowering a contract allocate many small values; mimalloc serves them faster than
// the system allocator (see BENCHMARKS.md, `charter check`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    charter::cli::main()
}
