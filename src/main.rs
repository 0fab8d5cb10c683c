use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the hot path allocates many small, short-lived strings across
/// worker threads, where glibc's malloc spent a fifth of the CPU in its
/// arena locks and consolidation (perf, `enrichd-bench hot`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = enrichd::cli::Cli::parse();
    // Before the runtime's threads touch any memory.
    enrichd_alloc::small_pages();
    if !cli.runs_for_long() {
        enrichd_alloc::purge_at_once();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli.run().await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
