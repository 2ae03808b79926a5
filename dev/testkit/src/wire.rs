//! A TCP proxy in front of the test database that can fail one command the way a network does:
//! - lose its reply: the command reaches the server and takes effect, then the client's
//!   connection is closed before the answer comes back, as a network failure after a request
//!   was sent would. What the driver then sees is an I/O error for a write that was applied;
//! - hold it: the command is kept back for a while before it is passed on, as a stalled
//!   connection would, so that a test can change the data between a read and a write;
//! - lose its reply and then go dark: every connection is closed and new ones are closed as
//!   they come, until [`Proxy::light`], so that nothing can even be read back.
//!
//! It reads MongoDB's framing (a little-endian length before every message) and, for an
//! `OP_MSG`, the first element of its body document: the command's name and the collection.
use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf},
    sync::watch,
    task::JoinHandle,
};

const OP_MSG: i32 = 2013;
/// MongoDB's own limit on a message, with room for the header.
const MAX_MESSAGE: usize = 48 * 1024 * 1024;

pub struct Proxy {
    pub port: u16,
    armed: Arc<Mutex<Option<Armed>>>,
    done: Arc<AtomicBool>,
    dark: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

/// The next command that matches, and what happens to it.
struct Armed {
    command: String,
    collection: String,
    fault: Fault,
}

#[derive(Clone, Copy)]
enum Fault {
    LoseReply { then_dark: bool },
    Hold(Duration),
}

impl Proxy {
    /// Listens on a free loopback port and relays every connection to `upstream` (a
    /// `mongodb://host:port/` URI).
    pub async fn start(upstream: &str) -> Self {
        let target = upstream
            .trim_start_matches("mongodb://")
            .split(['/', '?'])
            .next()
            .expect("host:port in the URI")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let armed = Arc::new(Mutex::new(None));
        let done = Arc::new(AtomicBool::new(false));
        let dark = Arc::new(watch::Sender::new(false));
        let (a, d, k) = (Arc::clone(&armed), Arc::clone(&done), Arc::clone(&dark));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *k.borrow() {
                    continue;
                }
                let (a, d, k, target) = (
                    Arc::clone(&a),
                    Arc::clone(&d),
                    Arc::clone(&k),
                    target.clone(),
                );
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&target).await {
                        relay(client, server, a, d, k).await;
                    }
                });
            }
        });
        Self {
            port,
            armed,
            done,
            dark,
            accept,
        }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// The next `command` on `collection` (say `insert` on `users`) loses its reply.
    pub fn lose_next(&self, command: &str, collection: &str) {
        self.arm(command, collection, Fault::LoseReply { then_dark: false });
    }

    /// As [`Proxy::lose_next`], and from then on every connection is closed, until
    /// [`Proxy::light`]: the database is unreachable right after the write landed.
    pub fn lose_next_then_go_dark(&self, command: &str, collection: &str) {
        self.arm(command, collection, Fault::LoseReply { then_dark: true });
    }

    /// Relays connections again after [`Proxy::lose_next_then_go_dark`].
    pub fn light(&self) {
        self.dark.send_replace(false);
    }

    /// The next `command` on `collection` reaches the server only after `delay`.
    pub fn hold_next(&self, command: &str, collection: &str, delay: Duration) {
        self.arm(command, collection, Fault::Hold(delay));
    }

    fn arm(&self, command: &str, collection: &str, fault: Fault) {
        self.done.store(false, Ordering::SeqCst);
        *self.armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Armed {
            command: command.to_owned(),
            collection: collection.to_owned(),
            fault,
        });
    }

    /// Whether a reply has been lost since [`Proxy::lose_next`].
    pub fn lost(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Whether a command has been taken to hold since [`Proxy::hold_next`] (it may still be
    /// held).
    pub fn held(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits, at most 10 s, until the command armed by [`Proxy::hold_next`] is being held;
    /// panics naming `what` if it never comes.
    pub async fn wait_held(&self, what: &str) {
        let waiting = std::time::Instant::now();
        while !self.held() {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "{what} never came"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Armed>>>,
    done: Arc<AtomicBool>,
    dark: Arc<watch::Sender<bool>>,
) {
    let mut gone_dark = dark.subscribe();
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let cut = AtomicBool::new(false);
    let then_dark = AtomicBool::new(false);
    let requests = async {
        while let Some(message) = read_message(&mut from_client).await {
            let hit = {
                let mut armed = armed.lock().unwrap_or_else(PoisonError::into_inner);
                let hit = armed.as_ref().is_some_and(|a| {
                    command_of(&message) == Some((a.command.as_str(), a.collection.as_str()))
                });
                if hit {
                    armed.take().map(|a| a.fault)
                } else {
                    None
                }
            };
            match hit {
                Some(Fault::LoseReply { then_dark: dark }) => {
                    then_dark.store(dark, Ordering::SeqCst);
                    cut.store(true, Ordering::SeqCst);
                }
                Some(Fault::Hold(delay)) => {
                    done.store(true, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                }
                None => {}
            }
            if to_server.write_all(&message).await.is_err() {
                return;
            }
        }
    };
    let replies = async {
        while let Some(message) = read_message(&mut from_server).await {
            if cut.load(Ordering::SeqCst) {
                if then_dark.load(Ordering::SeqCst) {
                    dark.send_replace(true);
                }
                done.store(true, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&message).await.is_err() {
                return;
            }
        }
    };
    // Either side ending drops both connections: the client sees its connection closed.
    tokio::select! {
        () = requests => {}
        () = replies => {}
        _ = gone_dark.wait_for(|dark| *dark) => {}
    }
}

async fn read_message(from: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length).await.ok()?;
    let total = usize::try_from(i32::from_le_bytes(length)).ok()?;
    if !(16..=MAX_MESSAGE).contains(&total) {
        return None;
    }
    let mut message = vec![0u8; total];
    message[..4].copy_from_slice(&length);
    from.read_exact(&mut message[4..]).await.ok()?;
    Some(message)
}

/// `(command, collection)` of an `OP_MSG` whose body starts with a string element, such as
/// `{insert: "users", ...}`.
fn command_of(message: &[u8]) -> Option<(&str, &str)> {
    let op = i32::from_le_bytes(message.get(12..16)?.try_into().ok()?);
    // Header (16), flag bits (4), section kind 0 (1), document length (4), element type.
    if op != OP_MSG || *message.get(20)? != 0 || *message.get(25)? != 0x02 {
        return None;
    }
    let rest = message.get(26..)?;
    let name_end = rest.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&rest[..name_end]).ok()?;
    let after = rest.get(name_end + 1..)?;
    let len = usize::try_from(i32::from_le_bytes(after.get(..4)?.try_into().ok()?)).ok()?;
    let value = after.get(4..4 + len.checked_sub(1)?)?;
    Some((name, std::str::from_utf8(value).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_and_collection_are_read_from_an_op_msg() {
        let body = mongodb::bson::to_vec(&mongodb::bson::doc! {"insert": "users", "ordered": true})
            .expect("bson");
        let mut message = Vec::new();
        let total = 16 + 4 + 1 + body.len();
        message.extend_from_slice(&i32::try_from(total).expect("small").to_le_bytes());
        message.extend_from_slice(&[0; 8]);
        message.extend_from_slice(&OP_MSG.to_le_bytes());
        message.extend_from_slice(&[0; 4]);
        message.push(0);
        message.extend_from_slice(&body);
        assert_eq!(command_of(&message), Some(("insert", "users")));
        message[12] = 0xd4; // OP_QUERY, 2004
        message[13] = 0x07;
        assert_eq!(command_of(&message), None);
        assert_eq!(command_of(&message[..10]), None);
    }
}
