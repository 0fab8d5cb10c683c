use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the hot path allocates many small, short-lived strings across
/// worker threads, where glibc's malloc spent a fifth of the CPU in its
/// arena locks and consolidation (perf, `enrichd-bench hot`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    match enrichd::cli::Cli::parse().run().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
