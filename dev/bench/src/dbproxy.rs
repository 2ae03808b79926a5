//! A loopback TCP proxy in front of the database that notes every round trip, to profile where a
//! handler's time goes without touching the handler: how many database round trips it makes and
//! how long the database kept it waiting, the rest being its own work.
//!
//! MongoDB's wire protocol frames every message with a 16-byte header (length, `requestID`,
//! `responseTo`, `opCode`), so pairing each reply with its request needs only the header; the
//! bytes are forwarded untouched. The proxy adds a little latency to each trip, so it is used
//! only for the profile, never for the headline figures.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::{JoinHandle, JoinSet},
};

/// One request/reply pair as the proxy saw it.
#[derive(Debug, Clone)]
struct Trip {
    start: Instant,
    end: Instant,
    /// The command and its collection, e.g. `find users`.
    command: String,
}

type Trips = Arc<Mutex<Vec<Trip>>>;

pub struct DbProxy {
    addr: SocketAddr,
    trips: Trips,
    server: JoinHandle<()>,
}

/// What the database did during one window of time.
#[derive(Debug, Clone, Default)]
pub struct DbUse {
    pub round_trips: usize,
    /// Time during which at least one request was waiting for its reply.
    pub waiting: Duration,
    /// Round-trip time per command (`insert sessions`), summed, in first-seen order.
    pub by_command: Vec<(String, Duration)>,
}

impl DbProxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let trips: Trips = Arc::default();
        let server = tokio::spawn(serve(listener, upstream, trips.clone()));
        Ok(Self {
            addr,
            trips,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The round trips that started and ended within `[from, to]`, and how long they kept the
    /// caller waiting (overlapping trips counted once).
    pub fn usage(&self, from: Instant, to: Instant) -> DbUse {
        let mut trips: Vec<Trip> = self
            .trips
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|t| t.start >= from && t.end <= to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        trips.sort_by_key(|t| t.start);
        let mut waiting = Duration::ZERO;
        let mut covered_until = from;
        for t in &trips {
            let start = t.start.max(covered_until);
            if t.end > start {
                waiting += t.end - start;
                covered_until = t.end;
            }
        }
        let mut by_command: Vec<(String, Duration)> = Vec::new();
        for t in &trips {
            match by_command.iter_mut().find(|(c, _)| *c == t.command) {
                Some((_, d)) => *d += t.end - t.start,
                None => by_command.push((t.command.clone(), t.end - t.start)),
            }
        }
        DbUse {
            round_trips: trips.len(),
            waiting,
            by_command,
        }
    }
}

impl Drop for DbProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `host:port` of a plain `mongodb://host:port/...` URI, the only kind the local stack uses.
pub fn upstream_of(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("mongodb://")?;
    let authority = rest.split(['/', '?']).next()?;
    if authority.contains(['@', ',']) {
        return None;
    }
    authority.parse().ok()
}

async fn serve(listener: TcpListener, upstream: SocketAddr, trips: Trips) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        let trips = trips.clone();
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pending: Arc<Mutex<HashMap<i32, (Instant, String)>>> = Arc::default();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let requests = pending.clone();
            let up = pump(client_read, server_write, move |header, message| {
                if let Ok(mut p) = requests.lock() {
                    p.insert(header.request_id, (Instant::now(), command_of(message)));
                }
            });
            let down = pump(server_read, client_write, move |header, _| {
                let started = pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&header.response_to));
                if let (Some((start, command)), Ok(mut t)) = (started, trips.lock()) {
                    t.push(Trip {
                        start,
                        end: Instant::now(),
                        command,
                    });
                }
            });
            let _ = tokio::join!(up, down);
        });
        while connections.try_join_next().is_some() {}
    }
}

struct Header {
    request_id: i32,
    response_to: i32,
}

/// Forwards whole messages from `from` to `to`, calling `seen` as each one has been read.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut seen: impl FnMut(&Header, &[u8]),
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; 16];
        from.read_exact(&mut head).await?;
        let field = |i: usize| i32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let len = usize::try_from(field(0)).unwrap_or(0).max(16);
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(len, 0);
        from.read_exact(&mut buf[16..]).await?;
        seen(
            &Header {
                request_id: field(4),
                response_to: field(8),
            },
            &buf,
        );
        to.write_all(&buf).await?;
    }
}

const OP_MSG: i32 = 2013;

/// `name collection` for an `OP_MSG` whose body's first element is the command (`find: "users"`),
/// `name` when its value is not a string, `?` for anything else. Reads only the framing that the
/// wire protocol fixes: header, flag bits, section kind 0, the BSON body's first element.
fn command_of(message: &[u8]) -> String {
    let int = |at: usize| {
        message
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if int(12) != Some(OP_MSG) || message.get(20) != Some(&0) {
        return "?".to_owned();
    }
    // Body document at 21: length (4 bytes), then the first element: type, name\0, value.
    let Some(&kind) = message.get(25) else {
        return "?".to_owned();
    };
    let name_end = match message[26..].iter().position(|&b| b == 0) {
        Some(n) => 26 + n,
        None => return "?".to_owned(),
    };
    let name = String::from_utf8_lossy(&message[26..name_end]).into_owned();
    const STRING: u8 = 0x02;
    if kind == STRING
        && let Some(len) = int(name_end + 1).and_then(|l| usize::try_from(l).ok())
        && let Some(value) = message.get(name_end + 5..name_end + 5 + len.saturating_sub(1))
    {
        return format!("{name} {}", String::from_utf8_lossy(value));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OP_MSG carrying `{find: "users", $db: "x"}`.
    fn find_users() -> Vec<u8> {
        let mut body = Vec::new();
        body.push(0x02);
        body.extend_from_slice(b"find\0");
        body.extend_from_slice(&6i32.to_le_bytes());
        body.extend_from_slice(b"users\0");
        body.push(0x02);
        body.extend_from_slice(b"$db\0");
        body.extend_from_slice(&2i32.to_le_bytes());
        body.extend_from_slice(b"x\0");
        body.push(0);
        let doc_len = (body.len() + 4) as i32;
        let mut msg = Vec::new();
        let total = 16 + 4 + 1 + doc_len;
        for v in [total, 7, 0, OP_MSG] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
        msg.extend_from_slice(&0u32.to_le_bytes());
        msg.push(0);
        msg.extend_from_slice(&doc_len.to_le_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn the_command_and_collection_are_read_from_an_op_msg() {
        assert_eq!(command_of(&find_users()), "find users");
        assert_eq!(command_of(b"short"), "?");
        let mut other = find_users();
        other[12] = 1; // not OP_MSG
        assert_eq!(command_of(&other), "?");
    }

    #[test]
    fn only_plain_loopback_style_uris_are_proxied() {
        assert_eq!(
            upstream_of("mongodb://127.0.0.1:27017/"),
            "127.0.0.1:27017".parse().ok()
        );
        assert_eq!(
            upstream_of("mongodb://127.0.0.1:27017"),
            "127.0.0.1:27017".parse().ok()
        );
        assert_eq!(upstream_of("mongodb+srv://cluster.example.net/"), None);
        assert_eq!(upstream_of("mongodb://u:p@127.0.0.1:1/"), None);
        assert_eq!(upstream_of("mongodb://a:1,b:2/"), None);
    }
}
