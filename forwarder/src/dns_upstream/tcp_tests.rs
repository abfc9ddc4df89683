//! The TCP client against servers on loopback that this file starts: answers matched out of
//! order, a connection per [`QUERIES_PER_CONNECTION`] queries, and queries lost to a refused
//! connect or a server that hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;

use super::*;

/// How long a test waits for one event.
const WAIT: Duration = Duration::from_secs(5);

/// A query of `id`: the header's ID and nothing else of interest to the client.
fn query(id: u16) -> Vec<u8> {
    let mut q = vec![0u8; 12];
    q[..2].copy_from_slice(&id.to_be_bytes());
    q
}

/// A client whose events land in the returned queue.
fn client() -> (Client<Event>, Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::bounded(1024);
    (Client::new(tx), rx)
}

/// The messages on one accepted connection until the client half-closes it.
fn read_all(stream: &mut TcpStream) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::default();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            return messages;
        }
        let mut bytes = &buf[..n];
        while !bytes.is_empty() {
            let (taken, message) = decoder.push(bytes).unwrap();
            bytes = &bytes[taken..];
            messages.extend(message);
        }
    }
}

/// Reads `n` messages from `stream`.
fn read_n(stream: &mut TcpStream, n: usize) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::default();
    let mut messages = Vec::new();
    let mut byte = [0u8; 1];
    while messages.len() < n {
        stream.read_exact(&mut byte).unwrap();
        let (_, message) = decoder.push(&byte).unwrap();
        messages.extend(message);
    }
    messages
}

#[test]
fn answers_come_back_whatever_their_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let queries = read_n(&mut stream, 2);
        for q in queries.iter().rev() {
            stream.write_all(&stream::frame(q).unwrap()).unwrap();
        }
        read_all(&mut stream);
    });
    let (mut client, events) = client();
    client.send(to, &query(1));
    client.send(to, &query(2));
    let answers = [events.recv_timeout(WAIT), events.recv_timeout(WAIT)];
    assert_eq!(
        answers.map(Result::unwrap),
        [Event::Response(to, query(2)), Event::Response(to, query(1))]
    );
    client.stop();
    server.join().unwrap();
    assert_eq!(client.counters.connects.load(Ordering::Relaxed), 1);
    assert_eq!(client.counters.connect_failures.load(Ordering::Relaxed), 0);
}

#[test]
fn a_connection_carries_at_most_its_share_of_queries() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    // Echoes every query on every connection, each on its own thread; counts the
    // connections and the queries on each.
    let server = std::thread::spawn(move || {
        let mut handlers = Vec::new();
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            handlers.push(std::thread::spawn(move || {
                let mut decoder = Decoder::default();
                let mut buf = [0u8; 4096];
                let mut seen = 0;
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    if n == 0 {
                        return seen;
                    }
                    let mut bytes = &buf[..n];
                    while !bytes.is_empty() {
                        let (taken, message) = decoder.push(bytes).unwrap();
                        bytes = &bytes[taken..];
                        if let Some(q) = message {
                            seen += 1;
                            stream.write_all(&stream::frame(&q).unwrap()).unwrap();
                        }
                    }
                }
            }));
        }
        handlers
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let (mut client, events) = client();
    let total = QUERIES_PER_CONNECTION + 1;
    for id in 0..total {
        client.send(to, &query(id as u16));
    }
    for _ in 0..total {
        match events.recv_timeout(WAIT).unwrap() {
            Event::Response(from, _) => assert_eq!(from, to),
            other => panic!("{other:?}"),
        }
    }
    client.stop();
    assert_eq!(server.join().unwrap(), [QUERIES_PER_CONNECTION, 1]);
    assert_eq!(client.counters.connects.load(Ordering::Relaxed), 2);
}

#[test]
fn a_refused_connect_loses_its_queries() {
    let to = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // The listener is gone: nothing listens there.
    let (mut client, events) = client();
    client.send(to, &query(7));
    assert_eq!(events.recv_timeout(WAIT).unwrap(), Event::Lost(to, vec![7]));
    client.stop();
    assert_eq!(client.counters.connects.load(Ordering::Relaxed), 0);
    assert_eq!(client.counters.connect_failures.load(Ordering::Relaxed), 1);
}

#[test]
fn a_server_that_hangs_up_loses_the_queries_on_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_n(&mut stream, 1);
        // Closed without an answer.
    });
    let (mut client, events) = client();
    client.send(to, &query(9));
    assert_eq!(events.recv_timeout(WAIT).unwrap(), Event::Lost(to, vec![9]));
    server.join().unwrap();
    client.stop();
    assert_eq!(client.counters.closed.load(Ordering::Relaxed), 1);
}

#[test]
fn a_full_queue_drops_answers_and_counts_them() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        for q in read_n(&mut stream, 2) {
            stream.write_all(&stream::frame(&q).unwrap()).unwrap();
        }
        read_all(&mut stream);
    });
    // Room for one event only, never read until both answers are in.
    let (tx, events) = crossbeam_channel::bounded::<Event>(1);
    let mut client = Client::new(tx);
    client.send(to, &query(1));
    client.send(to, &query(2));
    let dropped = || client.counters.answers_dropped.load(Ordering::Relaxed);
    let deadline = std::time::Instant::now() + WAIT;
    while dropped() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(dropped(), 1);
    assert_eq!(events.try_recv().unwrap(), Event::Response(to, query(1)));
    client.stop();
    server.join().unwrap();
}
