//! A minimal blocking HTTP/1.1 client over `std::net`, enough for the tests: one request
//! per connection (`Connection: close`), fixed-length or chunked responses. It keeps the
//! tests free of a full HTTP client dependency. Also used by crates/kinship/tests/cli.rs.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }
}

/// Sends one request; `headers` are added after Host, Content-Length and Connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response: {}", String::from_utf8_lossy(&raw))))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Some(Response { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).ok()?.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// `Authorization: Basic base64(user:)`, as the Segment SDKs send a write key.
pub fn basic(user: &str) -> String {
    format!("Basic {}", base64(format!("{user}:").as_bytes()))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A JSON POST with optional extra headers.
pub fn post_json(addr: SocketAddr, path: &str, auth: Option<&str>, body: &serde_json::Value) -> Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    request(addr, "POST", path, &headers, body.to_string().as_bytes()).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// A GET with a bearer token (or none).
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("Authorization", a)).into_iter().collect();
    request(addr, "GET", path, &headers, b"").unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls `GET /api/v1/profiles?identifier=KIND:VALUE`, then the 360 view of the single
/// profile found, until `done` accepts it or `timeout` passes; returns the last view.
/// Resolution runs asynchronously after the commit, so tests wait for it.
pub fn wait_for_profile(
    addr: SocketAddr,
    token: &str,
    identifier: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    let mut last = serde_json::Value::Null;
    loop {
        let found = get(addr, &format!("/api/v1/profiles?identifier={identifier}&limit=100"), Some(token));
        assert_eq!(found.status, 200, "lookup {identifier}: {}", found.text());
        let profiles = found.json()["profiles"].as_array().cloned().unwrap_or_default();
        if profiles.len() == 1 {
            let id = profiles[0]["id"].as_str().expect("profile id").to_string();
            let view = get(addr, &format!("/api/v1/profiles/{id}?limit=500"), Some(token));
            // 404: the profile merged into another between the lookup and the read.
            if view.status != 404 {
                assert_eq!(view.status, 200, "profile {id}: {}", view.text());
                last = view.json();
                if done(&last) {
                    return last;
                }
            }
        } else if profiles.len() > 1 {
            last = serde_json::json!({ "several_profiles": profiles });
        }
        if std::time::Instant::now() > deadline {
            return last;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Event names of a 360 view, newest first.
pub fn event_names(view: &serde_json::Value) -> Vec<String> {
    view["events"].as_array().into_iter().flatten().filter_map(|e| e["event"].as_str().map(String::from)).collect()
}

/// `kind:value` of each identifier of a 360 view.
pub fn identifier_keys(view: &serde_json::Value) -> Vec<String> {
    view["identifiers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{}:{}", i["kind"].as_str().unwrap_or(""), i["value"].as_str().unwrap_or("")))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
    }
}
