//! Property tests: arbitrary and mutated bytes, and random exchanges between several
//! clients, with the server's tables checked after every step.

use super::*;
use proptest::prelude::*;

/// One step of a random exchange.
#[derive(Debug, Clone)]
enum Step {
    Discover(usize, Option<u8>),
    Select(usize, u8),
    InitReboot(usize, u8),
    Renew(usize, u8),
    Release(usize, u8),
    Decline(usize, u8),
    Wait(u64),
}

const CLIENTS: [EthernetAddress; 5] = [
    STATIC_MAC,
    EthernetAddress([2, 0, 0, 0, 0, 1]),
    EthernetAddress([2, 0, 0, 0, 0, 2]),
    EthernetAddress([2, 0, 0, 0, 0, 3]),
    EthernetAddress([2, 0, 0, 0, 0, 4]),
];

fn arb_step() -> impl Strategy<Value = Step> {
    let c = 0..CLIENTS.len();
    let a = 1u8..8;
    prop_oneof![
        (c.clone(), proptest::option::of(a.clone())).prop_map(|(c, a)| Step::Discover(c, a)),
        (c.clone(), a.clone()).prop_map(|(c, a)| Step::Select(c, a)),
        (c.clone(), a.clone()).prop_map(|(c, a)| Step::InitReboot(c, a)),
        (c.clone(), a.clone()).prop_map(|(c, a)| Step::Renew(c, a)),
        (c.clone(), a.clone()).prop_map(|(c, a)| Step::Release(c, a)),
        (c, a).prop_map(|(c, a)| Step::Decline(c, a)),
        (0u64..4000).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let mut net = Net::new(Config::default());
        let _ = net.raw(&bytes);
        prop_assert_eq!(net.server.stats().received, 1);
    }

    #[test]
    fn mutated_requests_never_panic(
        base in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut req = match base {
            0 => discover(mac(1)),
            1 => select(mac(1), ip(3)),
            2 => renew(mac(1), ip(3)),
            _ => release(mac(1), ip(3)),
        };
        req.hostname = Some("guest".into());
        req.parameter_request_list = Some(vec![1, 3, 6, 15, 26, 119]);
        let mut bytes = req.to_bytes().unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = cut.index(bytes.len() + 1);
        let mut net = Net::new(Config::default());
        net.lease(mac(1));
        let _ = net.raw(&bytes[..len]);
    }

    #[test]
    fn random_exchanges_keep_the_tables_consistent(
        steps in proptest::collection::vec(arb_step(), 1..60)
    ) {
        let mut net = Net::new(Config {
            pool_start: ip(3),
            pool_end: ip(6),
            max_offers: 3,
            ..Config::default()
        });
        let mut offset = 0;
        for step in steps {
            let req = match step {
                Step::Discover(c, a) => {
                    let mut r = discover(CLIENTS[c]);
                    r.requested_ip = a.map(ip);
                    r
                }
                Step::Select(c, a) => select(CLIENTS[c], ip(a)),
                Step::InitReboot(c, a) => init_reboot(CLIENTS[c], ip(a)),
                Step::Renew(c, a) => renew(CLIENTS[c], ip(a)),
                Step::Release(c, a) => release(CLIENTS[c], ip(a)),
                Step::Decline(c, a) => decline(CLIENTS[c], ip(a)),
                Step::Wait(s) => {
                    offset += s;
                    net.at(offset);
                    continue;
                }
            };
            if let Some((_, reply)) = net.send(&req) {
                let given = reply.yiaddr;
                if given != Ipv4Addr::UNSPECIFIED {
                    // The static address only ever goes to its MAC, and it gets nothing else.
                    prop_assert_eq!(given == ip(2), req.chaddr == STATIC_MAC);
                    prop_assert!(given == ip(2) || (3..=6).contains(&given.octets()[3]));
                }
            }
            let leases = bound(&net);
            for (i, (a, m)) in leases.iter().enumerate() {
                prop_assert!(leases[i + 1..].iter().all(|(b, n)| a != b && m != n));
            }
        }
    }
}
