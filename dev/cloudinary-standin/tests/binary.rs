//! The `cloudinary-standin` binary as the project's scripts run it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_binary_announces_its_url_writes_the_port_file_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("cloudinary-standin-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let port_file = dir.join("url");
    let storage = dir.join("storage");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudinary-standin"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "key",
            "--api-secret",
            "secret",
        ])
        .arg("--storage-dir")
        .arg(&storage)
        .arg("--port-file")
        .arg(&port_file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");

    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let base = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"),
        "{base}"
    );
    assert_eq!(
        std::fs::read_to_string(&port_file).ok().as_deref(),
        Some(base.as_str())
    );
    assert!(storage.is_dir());

    let health = reqwest::get(format!("{base}/__standin/health"))
        .await
        .expect("an answer");
    assert_eq!(health.text().await.ok().as_deref(), Some("ok"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_binary_refuses_to_start_without_an_api_secret() {
    let output = Command::new(env!("CARGO_BIN_EXE_cloudinary-standin"))
        .args(["--api-key", "key"])
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--api-secret"));
}
