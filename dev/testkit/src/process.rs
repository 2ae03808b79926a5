//! A private FerretDB process for fault tests: stopped and restarted on the same port and data
//! directory without disturbing the shared server other tests use.
use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct PrivateDatabase {
    pub port: u16,
    data: PathBuf,
    child: Option<Child>,
}

impl PrivateDatabase {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data =
            std::env::temp_dir().join(format!("videotube-private-db-{}", crate::random_suffix()));
        std::fs::create_dir_all(&data).expect("data dir");
        let mut db = Self {
            port,
            data,
            child: None,
        };
        db.resume();
        db
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// (Re)starts the server and waits until it accepts connections.
    pub fn resume(&mut self) {
        let bin = crate::required_env("TEST_FERRETDB_BIN");
        let child = Command::new(bin)
            .arg("--handler=sqlite")
            .arg(format!("--sqlite-url=file:{}/", self.data.display()))
            .arg(format!("--state-dir={}", self.data.display()))
            .arg(format!("--listen-addr=127.0.0.1:{}", self.port))
            .args(["--debug-addr=-", "--telemetry=disable", "--log-level=error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start FerretDB");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private FerretDB did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (as a crash would) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateDatabase {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
