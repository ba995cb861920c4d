//! The `offboard` binary: the web console (`serve`, the default) and the command line.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::cli::run().await
}
