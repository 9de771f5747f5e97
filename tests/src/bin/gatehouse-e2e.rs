//! The gateway binary for end-to-end tests: identical to `gatehouse`.

fn main() -> std::process::ExitCode {
    gateway::cli::main()
}
