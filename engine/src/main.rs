//! The `trawl` command line.

use std::process::ExitCode;

use clap::Parser;
use trawl_engine::ops::memory::{self, CountingAlloc};

// Counted, so the metrics can tell our live bytes from allocator retention.
#[global_allocator]
static GLOBAL: CountingAlloc<mimalloc::MiMalloc> = CountingAlloc(mimalloc::MiMalloc);

mod cli;

fn main() -> ExitCode {
    GLOBAL.mark_installed();
    memory::keep_large_libc_blocks_out_of_the_heap();
    let cli = cli::Cli::parse();
    cli::init_logging();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("trawl: {}", cli::one_line(&err));
            ExitCode::from(cli::exit_code(&err))
        }
    }
}
