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
#[derive(Debug, Clone, Copy)]
struct Trip {
    start: Instant,
    end: Instant,
}

type Trips = Arc<Mutex<Vec<Trip>>>;

pub struct DbProxy {
    addr: SocketAddr,
    trips: Trips,
    server: JoinHandle<()>,
}

/// What the database did during one window of time.
#[derive(Debug, Clone, Copy, Default)]
pub struct DbUse {
    pub round_trips: usize,
    /// Time during which at least one request was waiting for its reply.
    pub waiting: Duration,
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
                    .copied()
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
        DbUse {
            round_trips: trips.len(),
            waiting,
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
            continue;
        };
        let trips = trips.clone();
        connections.spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = (client.set_nodelay(true), server.set_nodelay(true));
            let pending: Arc<Mutex<HashMap<i32, Instant>>> = Arc::default();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let requests = pending.clone();
            let up = pump(client_read, server_write, move |header| {
                if let Ok(mut p) = requests.lock() {
                    p.insert(header.request_id, Instant::now());
                }
            });
            let down = pump(server_read, client_write, move |header| {
                let started = pending
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&header.response_to));
                if let (Some(start), Ok(mut t)) = (started, trips.lock()) {
                    t.push(Trip {
                        start,
                        end: Instant::now(),
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
    mut seen: impl FnMut(&Header),
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
        seen(&Header {
            request_id: field(4),
            response_to: field(8),
        });
        to.write_all(&buf).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
