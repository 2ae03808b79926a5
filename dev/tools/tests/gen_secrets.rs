//! Runs the real `gen-secrets` binary and checks what a user would paste into `.env`.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn run() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gen-secrets"))
        .output()
        .expect("run gen-secrets");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[test]
fn gen_secrets_prints_two_distinct_env_lines_of_32_random_bytes() {
    let stdout = run();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let mut values = Vec::new();
    for (line, name) in lines
        .iter()
        .zip(["ACCESS_TOKEN_SECRET", "REFRESH_TOKEN_SECRET"])
    {
        let value = line
            .strip_prefix(&format!("{name}="))
            .unwrap_or_else(|| panic!("expected {name}=..., got {line}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(value)
            .expect("base64url without padding");
        assert_eq!(bytes.len(), 32, "{line}");
        values.push(value.to_owned());
    }
    assert_ne!(values[0], values[1]);
}

#[test]
fn gen_secrets_prints_new_secrets_every_run() {
    assert_ne!(run(), run());
}
