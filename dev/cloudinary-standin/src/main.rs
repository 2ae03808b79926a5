//! `cloudinary-standin` binary: runs the stand-in server for the project's dev and test scripts.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cloudinary_standin::Settings;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "usage: cloudinary-standin --api-key KEY --api-secret SECRET \
[--listen ADDR (default 127.0.0.1:0)] [--storage-dir DIR] [--port-file FILE]

Prints `listening on http://HOST:PORT` once ready; --port-file also gets that base URL.
Stops on SIGTERM or SIGINT.";

/// How long requests in flight (e.g. a hang fault) may hold up shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

struct Cli {
    listen: SocketAddr,
    settings: Settings,
    port_file: Option<PathBuf>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Cli, String> {
    let mut listen = None;
    let mut api_key = None;
    let mut api_secret = None;
    let mut storage_dir = None;
    let mut port_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--api-key" => &mut api_key,
            "--api-secret" => &mut api_secret,
            "--storage-dir" => &mut storage_dir,
            "--port-file" => &mut port_file,
            _ => return Err(format!("unknown argument {flag}")),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = Some(value);
    }
    let listen = listen.as_deref().unwrap_or("127.0.0.1:0");
    Ok(Cli {
        listen: listen
            .parse()
            .map_err(|_| format!("--listen: {listen} is not an IP:PORT address"))?,
        settings: Settings {
            api_key: api_key
                .filter(|k| !k.is_empty())
                .ok_or("--api-key is required")?,
            api_secret: api_secret
                .filter(|s| !s.is_empty())
                .ok_or("--api-secret is required")?,
            storage_dir: storage_dir.map(PathBuf::from),
        },
        port_file: port_file.map(PathBuf::from),
    })
}

/// Writes the base URL through a temporary file, so a script polling for it never reads half.
fn write_port_file(path: &PathBuf, base_url: &str) -> std::io::Result<()> {
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, base_url)?;
    std::fs::rename(&tmp, path)
}

async fn run(cli: Cli) -> std::io::Result<()> {
    // Install signal handlers before announcing readiness, so an early SIGTERM is not lost.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    if let Some(dir) = &cli.settings.storage_dir {
        std::fs::create_dir_all(dir)?;
    }
    let listener = TcpListener::bind(cli.listen).await?;
    let base_url = cloudinary_standin::base_url(listener.local_addr()?);
    let mut server = tokio::spawn(cloudinary_standin::serve_with_shutdown(
        listener,
        cli.settings,
        async move {
            let _ = stop_rx.await;
        },
    ));
    if let Some(path) = &cli.port_file {
        write_port_file(path, &base_url)?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {base_url}")?;
    stdout.flush()?;
    drop(stdout);

    tokio::select! {
        _ = sigterm.recv() => {}
        _ = sigint.recv() => {}
        ended = &mut server => {
            return match ended {
                Ok(result) => result,
                Err(join) => Err(std::io::Error::other(join)),
            };
        }
    }
    eprintln!("cloudinary-standin: stopping");
    let _ = stop_tx.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(std::io::Error::other(join)),
        Err(_) => Ok(()), // Requests still in flight are dropped.
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("cloudinary-standin: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloudinary-standin: {err}");
            ExitCode::FAILURE
        }
    }
}
