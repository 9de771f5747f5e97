//! The `gatehouse` binary. Everything is in the library: [`gateway::cli::main`]
//! parses the command line, sets up logging, runs, and picks the exit status.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
