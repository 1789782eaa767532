//! The `trawl` command line: the binary around the `trawl-engine` library.
//!
//! Owns: argument parsing and `--help` ([`commands`]), the configuration file
//! ([`config`]), logs ([`logging`]), the Prometheus endpoint ([`metrics`]), the live status line
//! ([`status`]), exit codes and the global allocator. Everything it
//! shows comes from the library's snapshots; it makes no protocol decision.

use std::process::ExitCode;

use clap::Parser;
use trawl_engine::ops::memory::{self, CountingAlloc};

// Counted, so the metrics can tell our live bytes from allocator retention.
#[global_allocator]
static GLOBAL: CountingAlloc<mimalloc::MiMalloc> = CountingAlloc(mimalloc::MiMalloc);

mod commands;
mod config;
mod logging;
mod metrics;
mod status;
mod watch;

fn main() -> ExitCode {
    GLOBAL.mark_installed();
    memory::keep_large_libc_blocks_out_of_the_heap();
    let cli = commands::Cli::parse();
    let log_format = cli.log_format;
    logging::init(log_format);
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = commands::exit_code(&err);
            match log_format {
                logging::LogFormat::Text => eprintln!("trawl: {}", commands::one_line(&err)),
                logging::LogFormat::Json => {
                    tracing::error!(target: "trawl", exit_code = code, "{}", commands::one_line(&err))
                }
            }
            ExitCode::from(code)
        }
    }
}
