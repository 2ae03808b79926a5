//! `cargo run -q -p devtools --bin gen-secrets`: prints fresh token secrets as `.env` lines.
//!
//! Redirect or paste the output into `.env` (or a secret store); run it again for new ones.

use std::process::ExitCode;

fn main() -> ExitCode {
    match devtools::token_secret_lines() {
        Ok(lines) => {
            print!("{lines}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "gen-secrets: the operating system's random number generator failed: {error}"
            );
            ExitCode::FAILURE
        }
    }
}
