//! The `gatehouse` binary: parse the command line, set up logging, run, and
//! turn the outcome into an exit status. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use gateway::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gatehouse: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !matches!(error, cli::CliError::Config(_)) {
                eprintln!("gatehouse: {error}");
            }
            ExitCode::from(error.exit_code())
        }
    }
}
