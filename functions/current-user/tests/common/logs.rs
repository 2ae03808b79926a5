//! What the handlers log, captured, so tests can check that no email, password or token is in it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged on this thread, at every level, until the guard is dropped. Tests on
    /// the current-thread runtime run every handler step on this thread (argon2's worker logs
    /// nothing).
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Self::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }

    /// Panics if any of `secrets` appears in the log; also insists something was logged.
    pub fn assert_free_of(&self, secrets: &[&str]) {
        let text = self.text();
        assert!(text.contains("request"), "the requests were logged: {text}");
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
        }
    }
}
