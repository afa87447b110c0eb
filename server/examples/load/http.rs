//! The client side of the API runs: one keep-alive HTTP/1.1 connection, and
//! the percentiles the tables print.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            addr,
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends a JSON POST and returns the status and the body.
    pub(crate) async fn post(&mut self, path: &str, bearer: &str, body: &str) -> (u16, &[u8]) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        self.read_response().await
    }

    /// Reads one response (with `Content-Length`).
    async fn read_response(&mut self) -> (u16, &[u8]) {
        let buf = &mut self.buf;
        buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).unwrap();
                let status = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap();
                while buf.len() < end + 4 + length {
                    let read = self.stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "connection closed mid-response");
                    buf.extend_from_slice(&chunk[..read]);
                }
                return (status, &buf[end + 4..end + 4 + length]);
            }
            let read = self.stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "connection closed");
            buf.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The value at `p` (0 to 1) of sorted durations; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
