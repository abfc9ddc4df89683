//! The whole gateway ingress path: `forwarder::gateway::Gateway` (ingress parse, ARP, ICMP echo,
//! NDP, the DHCP server, fragment reassembly, flow and DNS dispatch) fed a sequence of frames
//! and clock steps decoded from the input, its outcomes handled as the runtime's gateway
//! thread does: a reassembled datagram goes round once more, flows go to a fake forwarder that
//! checks the flow's payload lies inside its frame, DNS queries are answered with their own
//! bytes through `dns_reply_frame`; what it sends unasked (Time Exceeded for abandoned
//! reassembly, periodic router advertisements) is drained after every step. Neighbor Discovery
//! that came in fragments is never answered (RFC 6980).
//!
//! Oracles: nothing panics; every reply, unasked ones included, parses as an Ethernet frame
//! from the gateway's MAC no longer than MTU + 14; every drop is counted once under its
//! reason, every unasked frame once as sent; the reassembler's bytes held and datagrams stay
//! under the configured bounds after every step, and all of it is released once every timeout
//! has run.
//!
//! Input: a first byte picks the MTU (576, 1280, 1500, 9000), the reassembly limits (the
//! defaults, or small ones that are hit quickly), whether the IPv6 services (router
//! advertisements, DHCPv6, DNS over IPv6) and the multicast relay are on. Then records,
//! repeated: an op byte, then
//! - op % 4 == 0: a frame: length (2 bytes, little-endian), then that many bytes;
//! - op % 4 == 1: the same, its destination MAC made the gateway's (captured frames were
//!   addressed to other hosts);
//! - op % 4 == 2: the clock advances by (2 bytes) × 10 ms; due timers run;
//! - op % 4 == 3: the previous frame again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::frag::Config as FragConfig;
use stack::ingress::{DropReason, FlowPacket};
use stack::time::{Epoch, Instant};
use stack::wire::{EthernetAddress, EthernetFrame, EthernetRepr, ethernet};
use std::time::Duration;
use forwarder::gateway::{Gateway, GatewayConfig, Outcome, V6Config, dns_reply_frame};

/// At most this many records per input, so one input stays fast.
const MAX_STEPS: usize = 512;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// What the gateway did with the sequence; the fake forwarder's side of it.
#[derive(Default)]
struct Seen {
    /// Frames handed to the gateway, reassembled datagrams included.
    frames: u64,
    replies: u64,
    flows: u64,
    dns: u64,
    /// Frames the gateway sent unasked.
    unasked: u64,
}

struct Harness {
    gateway: Gateway,
    mac: EthernetAddress,
    mtu: usize,
    frag: FragConfig,
    seen: Seen,
}

impl Harness {
    fn reply(&mut self, frame: &[u8]) {
        let packet = EthernetFrame::new_checked(frame).expect("a reply is an Ethernet frame");
        let eth = EthernetRepr::parse(&packet).expect("a reply's header parses");
        assert_eq!(eth.src_addr, self.mac, "a reply comes from the gateway");
        assert!(
            frame.len() <= self.mtu + ethernet::HEADER_LEN,
            "a {}-byte reply on a link of MTU {}",
            frame.len(),
            self.mtu
        );
        self.seen.replies += 1;
    }

    /// The fake forwarder: a flow's payload lies inside the frame it came in.
    fn flow(&mut self, frame: &[u8], packet: &FlowPacket) {
        assert!(packet.payload.start <= packet.payload.end);
        assert!(packet.payload.end <= frame.len());
        assert_eq!(packet.key.guest.is_ipv4(), packet.key.remote.is_ipv4());
        self.seen.flows += 1;
    }

    fn frame(&mut self, now: Instant, frame: &[u8]) {
        let before = *self.gateway.drops();
        self.seen.frames += 1;
        let outcome = self.gateway.handle_frame(now, frame);
        self.outcome(now, frame, outcome, &before, true);
        self.unasked();
        let stats = self.gateway.frag_stats();
        assert!(stats.bytes_held <= self.frag.max_bytes);
        assert!(stats.peak_bytes_held <= self.frag.max_bytes);
        assert!(stats.datagrams <= self.frag.max_datagrams);
    }

    fn outcome(
        &mut self,
        now: Instant,
        frame: &[u8],
        outcome: Outcome,
        before: &stack::ingress::DropCounters,
        first: bool,
    ) {
        match outcome {
            Outcome::Reply(reply) => self.reply(&reply),
            Outcome::Replies(replies) => {
                assert!(replies.len() > 1, "one reply is a Reply");
                for reply in &replies {
                    self.reply(reply);
                }
            }
            Outcome::Flow(packet) | Outcome::DnsTcp(packet) => self.flow(frame, &packet),
            Outcome::Dns(query) => {
                assert!(query.payload.len() <= frame.len());
                // Answered with its own bytes, cut to what one datagram may carry, as the
                // DNS thread cuts its answers.
                let room = self.mtu.saturating_sub(48);
                let answer = query.payload.get(..room).unwrap_or(&query.payload);
                let reply = dns_reply_frame(self.mac, &query.client, 1, answer);
                self.reply(&reply);
                self.seen.dns += 1;
            }
            Outcome::Held => {}
            Outcome::Reassembled(whole) => {
                // The runtime handles the datagram as a new frame, once: it is no fragment.
                assert!(first, "a reassembled datagram is not a fragment again");
                assert!(whole.len() > ethernet::HEADER_LEN);
                assert_eq!(whole.get(..12), frame.get(..12), "the fragment's addresses");
                let before = *self.gateway.drops();
                let ndp_replies = self.gateway.counters().ndp_replies;
                self.seen.frames += 1;
                let again = self.gateway.handle_reassembled(now, &whole);
                // RFC 6980 §5: Neighbor Discovery that came in fragments is never answered.
                assert_eq!(self.gateway.counters().ndp_replies, ndp_replies);
                self.outcome(now, &whole, again, &before, false);
            }
            Outcome::Dropped(reason) => {
                assert!(reason.index() < DropReason::COUNT);
                assert_eq!(self.gateway.drops().get(reason), before.get(reason) + 1);
                assert_eq!(self.gateway.drops().total(), before.total() + 1);
            }
        }
    }

    fn advance(&mut self, now: Instant) {
        if self.gateway.poll_timeout().is_some_and(|at| at <= now) {
            self.gateway.handle_timeout(now);
        }
        self.unasked();
    }

    /// What the gateway sends unasked (Time Exceeded for abandoned reassembly): replies like
    /// any other, each counted.
    fn unasked(&mut self) {
        while let Some(frame) = self.gateway.poll_transmit() {
            self.reply(&frame);
            self.seen.unasked += 1;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let selector = input.u8();
    let mtu: u16 = [576, 1280, 1500, 9000][usize::from(selector & 3)];
    let frag = if selector & 4 == 0 {
        FragConfig::default()
    } else {
        FragConfig {
            max_datagrams: 4,
            max_bytes: 16 * 1024,
            max_fragments: 8,
            ..FragConfig::default()
        }
    };
    let mut config = GatewayConfig {
        mtu,
        reassembly: frag,
        multicast_relay: selector & 16 != 0,
        ..GatewayConfig::default()
    };
    if selector & 8 != 0 {
        let prefix = "fd9d:b9a2:e1c4:127::"
            .parse()
            .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
        let guest = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
        config.v6 = Some(V6Config::for_prefix(prefix, config.mac, guest));
    }
    // As the runtime configures its DHCP server.
    config.dhcp.mtu = Some(mtu);
    config.dhcp.routers = vec![config.ip];
    config.dhcp.dns_servers = vec![config.ip];
    let mac = config.mac;
    let Ok(gateway) = Gateway::new(config, Epoch::new(std::time::Instant::now())) else {
        panic!("the default configuration is valid");
    };
    let mut h = Harness {
        gateway,
        mac,
        mtu: usize::from(mtu),
        frag,
        seen: Seen::default(),
    };
    let mut now = Instant::ZERO;
    let mut last: Vec<u8> = Vec::new();
    let mut steps = 0;
    while !input.0.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let frame = match input.u8() % 4 {
            op @ (0 | 1) => {
                let len = usize::from(input.u16());
                let mut frame = input.take(len).to_vec();
                if op == 1
                    && let Some(dst) = frame.get_mut(..6)
                {
                    dst.copy_from_slice(mac.as_bytes());
                }
                frame
            }
            2 => {
                now = now + Duration::from_millis(u64::from(input.u16()) * 10);
                h.advance(now);
                continue;
            }
            _ => last.clone(),
        };
        h.frame(now, &frame);
        last = frame;
    }
    // Every timer runs out: nothing is held any more.
    let end = now + Duration::from_secs(3600);
    h.advance(end);
    let stats = h.gateway.frag_stats();
    assert_eq!((stats.datagrams, stats.bytes_held), (0, 0));
    let counters = h.gateway.counters();
    assert_eq!(counters.frames, h.seen.frames);
    assert_eq!(h.seen.flows, counters.flows + counters.dns_tcp_segments);
    assert_eq!(h.seen.dns, counters.dns_queries);
    // Unasked: every Time Exceeded, and the periodic advertisements among all of them.
    assert!(h.seen.unasked >= counters.time_exceeded_sent);
    assert!(h.seen.unasked <= counters.time_exceeded_sent + counters.router_adverts);
    // Answers are bounded by what was asked; unasked frames by the steps (one advertisement
    // per clock step at most) and the reassembler's bounds.
    assert!(h.seen.replies - h.seen.unasked <= h.seen.frames * 64);
});
