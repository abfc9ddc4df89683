//! The control API's request reader (`switch::link::http::read_request`) on arbitrary bytes,
//! read in chunks whose size the first byte picks. Nothing may panic; an accepted request's
//! body is exactly the bytes after its head, as long as Content-Length says, within the size
//! limits; the bytes it read past the request are the ones that follow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use switch::link::http::{MAX_BODY, MAX_HEAD, MAX_HEADERS, read_request};

/// A reader handing out at most `chunk` bytes a call.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let chunk = match selector % 4 {
        0 => 4096,
        1 => 1,
        _ => 1 + usize::from(selector),
    };
    let mut reader = Chunked { data: input, chunk };
    let Ok((request, leftover)) = read_request(&mut reader, "fuzz") else {
        return;
    };
    let consumed = input.len() - reader.data.len();
    let body_end = consumed - leftover.len();
    let body_start = body_end - request.body.len();
    assert_eq!(&input[body_start..body_end], &request.body[..]);
    assert_eq!(&input[body_end..consumed], &leftover[..]);
    assert!(body_start <= MAX_HEAD + 4);
    assert!(request.body.len() <= MAX_BODY);
    assert!(request.headers.len() <= MAX_HEADERS);
    let declared = request
        .header("content-length")
        .map_or(Some(0), |v| v.parse::<usize>().ok());
    assert_eq!(declared, Some(request.body.len()));
});
