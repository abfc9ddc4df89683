//! `-listen unix:///path | tcp://host:port | vsock://:port`: a minimal, bounded HTTP/1.1
//! server whose `POST /connect` turns the connection into a port.
//!
//! What gvproxy does, and so what we do: `/connect` hijacks the connection with no HTTP
//! response at all — gvforwarder writes its request and starts sending frames straight away,
//! 2-byte little-endian length before each — so any bytes after the request head are already
//! frames. A request that offers a virtio-net header (the guest agent's, [`super::offer`]) gets
//! it accepted by the stream's first frame where offloads are on. Every other request goes to a [`Handler`] (the control API plugs in there; the
//! default answers 404) and gets one response with `Connection: close`.
//!
//! Bounds: the request head is at most [`MAX_HEAD`] bytes with at most [`MAX_HEADERS`]
//! headers, a body at most [`Handler::max_body`] bytes ([`MAX_BODY`] unless the handler says
//! otherwise; by `Content-Length`, checked before the body is read; chunked bodies are refused
//! with 501), and the head and body must arrive within [`REQUEST_TIMEOUT`]. A request that
//! breaks a bound gets a 4xx/5xx response (a body over the bound: 413), is counted in
//! `handshake_failed` and told to the handler ([`Handler::refused`]), and the connection is
//! closed.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use super::endpoint::{Endpoint, EndpointError};
use super::listener::{Conn, Listener};
use super::offer::{self, Offer};
use super::qemu::serve_stream;
use super::stream::StreamSpec;
use super::{LinkCounters, LinkLimits};
use crate::framing::LengthPrefix;
use crate::port::Attacher;

/// Largest request line plus headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;
/// Time allowed for a whole request to arrive (gvproxy's server uses 10 s too).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The path that hijacks a connection into a port.
pub const CONNECT_PATH: &str = "/connect";

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string after `?`, or empty.
    pub query: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Who sent it, for logs.
    pub peer: String,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One response; sent with `Content-Length` and `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    /// A JSON response; `body` is already serialized.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    pub fn not_found() -> Response {
        Response::text(404, "404 page not found\n")
    }

    /// Writes the response (head and body) to `out`.
    pub fn write_to<W: Write>(&self, out: &mut W) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

/// Answers the requests that are not `/connect`: the control API's entry point.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Response;

    /// The largest request body this handler takes.
    fn max_body(&self) -> usize {
        MAX_BODY
    }

    /// A request was refused before reaching the handler, answered with `status`.
    fn refused(&self, status: u16) {
        let _ = status;
    }
}

impl<F> Handler for F
where
    F: Fn(&Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, request: &Request) -> Response {
        self(request)
    }
}

/// The handler until the control API exists: 404 for everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFound;

impl Handler for NotFound {
    fn handle(&self, _: &Request) -> Response {
        Response::not_found()
    }
}

/// What an HTTP listener serves.
#[derive(Clone)]
pub struct HttpOptions {
    /// Where `/connect` attaches ports; `None` serves no `/connect` (gvproxy's `-services`).
    pub connect: Option<Attacher>,
    pub handler: Arc<dyn Handler>,
    /// Mode of a unix socket file (the API is only for its owner: 0600).
    pub socket_mode: Option<u32>,
    /// Accept a guest agent's offer of a virtio-net header on `/connect` ([`super::offer`]).
    pub offload: bool,
}

impl std::fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOptions")
            .field("connect", &self.connect.is_some())
            .field("socket_mode", &self.socket_mode)
            .field("offload", &self.offload)
            .finish_non_exhaustive()
    }
}

/// Listens on a stream endpoint for HTTP requests.
pub fn listen(
    endpoint: &Endpoint,
    options: HttpOptions,
    limits: LinkLimits,
) -> Result<Listener, EndpointError> {
    if matches!(endpoint, Endpoint::Unixgram(_) | Endpoint::Unixpacket(_)) {
        return Err(EndpointError::WrongKind {
            addr: endpoint.to_string(),
            expected: "unix, tcp or vsock",
        });
    }
    let bound = endpoint.bind(options.socket_mode)?;
    let counters = Arc::new(LinkCounters::default());
    let handler = {
        let counters = counters.clone();
        move |conn: Conn| serve(conn, &options, limits, &counters)
    };
    Listener::spawn("http", bound, limits, counters, handler).map_err(|source| {
        EndpointError::Bind {
            endpoint: endpoint.to_string(),
            source,
        }
    })
}

fn serve(conn: Conn, options: &HttpOptions, limits: LinkLimits, counters: &Arc<LinkCounters>) {
    let _ = conn.socket.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut reader = &conn.socket;
    let max_body = options.handler.max_body();
    let (request, leftover) = match read_request_within(&mut reader, &conn.peer, max_body) {
        Ok(parsed) => parsed,
        Err(e) => {
            LinkCounters::bump(&counters.handshake_failed);
            tracing::info!(peer = %conn.peer, error = %e, "bad HTTP request");
            if let Some(status) = e.status() {
                options.handler.refused(status);
                let _ = Response::text(status, format!("{e}\n")).write_to(&mut &conn.socket);
            }
            return;
        }
    };
    if request.path == CONNECT_PATH
        && let Some(attacher) = &options.connect
    {
        if request.method != "POST" {
            let _ = Response::text(405, "use POST /connect\n").write_to(&mut &conn.socket);
            return;
        }
        let _ = conn.socket.set_read_timeout(None);
        let spec = StreamSpec {
            prefix: LengthPrefix::U16Le,
            max_frame: limits.max_frame,
        };
        let offer = request
            .header(offer::OFFER_HEADER)
            .and_then(Offer::parse)
            .filter(|_| options.offload);
        tracing::debug!(peer = %conn.peer, offer = offer.is_some(), "POST /connect: switching to frames");
        serve_stream(conn, attacher, "connect", spec, &leftover, offer, counters);
        return;
    }
    let response = options.handler.handle(&request);
    tracing::debug!(peer = %conn.peer, method = %request.method, path = %request.path, status = response.status, "HTTP request");
    let _ = response.write_to(&mut &conn.socket);
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("unsupported HTTP version")]
    Version,
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("chunked request bodies are not supported")]
    Chunked,
    #[error("connection closed before the request was complete")]
    Incomplete,
    #[error("reading the request: {0}")]
    Io(#[from] io::Error),
}

impl RequestError {
    /// The status to answer with, if an answer makes sense.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => Some(431),
            RequestError::Malformed(_) => Some(400),
            RequestError::Version => Some(505),
            RequestError::BodyTooLarge(_) => Some(413),
            RequestError::Chunked => Some(501),
            RequestError::Incomplete | RequestError::Io(_) => None,
        }
    }
}

/// Reads one request (head and body, the body at most [`MAX_BODY`] bytes) and returns it
/// with any bytes read past its end.
pub fn read_request<R: Read>(
    reader: &mut R,
    peer: &str,
) -> Result<(Request, Vec<u8>), RequestError> {
    read_request_within(reader, peer, MAX_BODY)
}

/// [`read_request`] with a body of at most `max_body` bytes.
pub fn read_request_within<R: Read>(
    reader: &mut R,
    peer: &str,
    max_body: usize,
) -> Result<(Request, Vec<u8>), RequestError> {
    let mut buf = Vec::with_capacity(1024);
    // Where the search for the blank line resumes: each byte is looked at a bounded number of
    // times however the head is cut into reads.
    let mut scanned = 0;
    let head_end = loop {
        if let Some(end) = find_head_end(&buf, scanned) {
            break end;
        }
        // A "\r\n\r\n" may straddle this read and the next.
        scanned = buf.len().saturating_sub(3);
        if buf.len() >= MAX_HEAD {
            return Err(RequestError::HeadTooLarge);
        }
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(MAX_HEAD + 4 - buf.len());
        let n = read_some(reader, chunk.get_mut(..want).unwrap_or_default())?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = buf.get(..head_end).unwrap_or_default();
    if head.len() > MAX_HEAD {
        return Err(RequestError::HeadTooLarge);
    }
    let mut request = parse_head(head, peer)?;
    let mut rest = buf.get(head_end..).unwrap_or_default().to_vec();
    if request
        .header("transfer-encoding")
        .is_some_and(|te| !te.eq_ignore_ascii_case("identity"))
    {
        return Err(RequestError::Chunked);
    }
    let body_len = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| RequestError::Malformed("bad Content-Length"))?,
    };
    if body_len > max_body {
        return Err(RequestError::BodyTooLarge(max_body));
    }
    while rest.len() < body_len {
        let mut chunk = [0u8; 4096];
        let want = chunk.len().min(body_len - rest.len());
        let n = read_some(reader, chunk.get_mut(..want).unwrap_or_default())?;
        rest.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let leftover = rest.split_off(body_len);
    request.body = rest;
    Ok((request, leftover))
}

/// One read; end of stream is [`RequestError::Incomplete`].
fn read_some<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, RequestError> {
    loop {
        match reader.read(buf) {
            Ok(0) => return Err(RequestError::Incomplete),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(RequestError::Io(e)),
        }
    }
}

/// The offset just past the blank line ending the head, if it has arrived.
/// The end of the head (just past its blank line), searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

fn parse_head(head: &[u8], peer: &str) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("bad request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(RequestError::Malformed("bad method"));
    }
    if !version.starts_with("HTTP/1.") {
        return Err(RequestError::Version);
    }
    if !target.starts_with('/') {
        return Err(RequestError::Malformed("request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if headers.len() >= MAX_HEADERS {
            return Err(RequestError::TooManyHeaders);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(RequestError::Malformed("header without ':'"))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(RequestError::Malformed("bad header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
        peer: peer.to_owned(),
    })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<(Request, Vec<u8>), RequestError> {
        read_request(&mut &raw[..], "test")
    }

    #[test]
    fn parses_what_gvforwarder_sends_and_keeps_the_frames_after_it() {
        let raw = b"POST /connect HTTP/1.1\r\nHost: unix\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n\x02\x00ab";
        let (req, rest) = parse(raw).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/connect");
        assert_eq!(req.header("HOST"), Some("unix"));
        assert_eq!(rest, b"\x02\x00ab");
    }

    /// Hands out one byte per read, as a peer trickling its request would.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            let Some(slot) = buf.first_mut() else {
                return Ok(0);
            };
            *slot = first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn a_request_read_one_byte_at_a_time() {
        let raw =
            b"POST /services/dns/add HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\n\r\n{}\x02\x00";
        let (req, rest) = read_request(&mut Trickle(raw), "test").unwrap();
        assert_eq!(req.path, "/services/dns/add");
        assert_eq!(req.header("host"), Some("api"));
        assert_eq!(req.body, b"{}");
        assert_eq!(
            rest, b"",
            "nothing past the body is read one byte at a time"
        );
        // The largest head allowed, trickled, is still found (and in linear time).
        let padding = "a".repeat(MAX_HEAD - 64);
        let raw = format!("GET / HTTP/1.1\r\nX: {padding}\r\n\r\n");
        let (req, _) = read_request(&mut Trickle(raw.as_bytes()), "test").unwrap();
        assert_eq!(req.header("x").map(str::len), Some(padding.len()));
    }

    #[test]
    fn body_and_query() {
        let raw = b"POST /services/forwarder/expose?x=1 HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}{}";
        let (req, rest) = parse(raw).unwrap();
        assert_eq!(req.query, "x=1");
        assert_eq!(req.body, b"{}{}");
        assert!(rest.is_empty());
    }

    #[test]
    fn bounds_and_malformed_requests() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(big.as_bytes()),
            Err(RequestError::HeadTooLarge)
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(
            parse(many.as_bytes()),
            Err(RequestError::TooManyHeaders)
        ));
        let body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(
            parse(body.as_bytes()),
            Err(RequestError::BodyTooLarge(MAX_BODY))
        ));
        let small = b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world";
        assert!(matches!(
            read_request_within(&mut &small[..], "test", 10),
            Err(RequestError::BodyTooLarge(10))
        ));
        assert!(read_request_within(&mut &small[..], "test", 11).is_ok());
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"GET / HTTP/1.1\r\n\xff: x\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(RequestError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse(b"GET / HTTP/2\r\n\r\n"),
            Err(RequestError::Version)
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(RequestError::Chunked)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(RequestError::Incomplete)
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"),
            Err(RequestError::Incomplete)
        ));
    }
}
