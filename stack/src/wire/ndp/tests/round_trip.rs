//! Property tests: built messages survive emit and parse; no input makes the parsers panic.

use super::*;

/// An option and the data it borrows.
#[derive(Debug, Clone)]
enum Owned {
    Slla([u8; 6]),
    Tlla([u8; 6]),
    Prefix(PrefixInfo),
    Redirected(Vec<u8>),
    Mtu(u32),
    Rdnss(u32, Vec<Ipv6Addr>),
    Dnssl(u32, Vec<&'static str>),
    Unknown(u8, Vec<u8>),
}

impl Owned {
    fn option(&self) -> NdpOption<'_> {
        match self {
            Owned::Slla(a) => NdpOption::SourceLinkLayerAddr(Address(*a)),
            Owned::Tlla(a) => NdpOption::TargetLinkLayerAddr(Address(*a)),
            Owned::Prefix(info) => NdpOption::PrefixInfo(*info),
            Owned::Redirected(data) => NdpOption::RedirectedHeader(data),
            Owned::Mtu(mtu) => NdpOption::Mtu(*mtu),
            Owned::Rdnss(lifetime, servers) => NdpOption::Rdnss {
                lifetime: *lifetime,
                servers: Servers::new(servers),
            },
            Owned::Dnssl(lifetime, names) => NdpOption::Dnssl {
                lifetime: *lifetime,
                domains: Domains::new(names).unwrap(),
            },
            Owned::Unknown(kind, data) => NdpOption::Unknown { kind: *kind, data },
        }
    }
}

const NAMES: [&str; 5] = [
    "example.org",
    "a.b.c.",
    "containers.internal",
    "x",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk.l",
];

/// `units` × 8 − `short` random bytes: option data that comes back unpadded.
fn arb_data(short: usize) -> impl Strategy<Value = Vec<u8>> {
    (1usize..6)
        .prop_flat_map(move |units| proptest::collection::vec(any::<u8>(), units * 8 - short))
}

fn arb_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

/// An address that is not multicast, as NS, NA and redirect targets must be.
fn arb_unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut a| {
        if a[0] == 0xff {
            a[0] = 0xfe;
        }
        Ipv6Addr::from(a)
    })
}

fn arb_option() -> impl Strategy<Value = Owned> {
    let known = [1u8, 2, 3, 4, 5, 25, 31];
    prop_oneof![
        any::<[u8; 6]>().prop_map(Owned::Slla),
        any::<[u8; 6]>().prop_map(Owned::Tlla),
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
            arb_addr()
        )
            .prop_map(|(prefix_len, l, a, valid, preferred, prefix)| {
                Owned::Prefix(PrefixInfo {
                    prefix_len,
                    on_link: l,
                    autonomous: a,
                    valid_lifetime: valid,
                    preferred_lifetime: preferred,
                    prefix,
                })
            }),
        arb_data(0).prop_map(Owned::Redirected),
        any::<u32>().prop_map(Owned::Mtu),
        (any::<u32>(), proptest::collection::vec(arb_addr(), 1..4))
            .prop_map(|(l, s)| Owned::Rdnss(l, s)),
        (
            any::<u32>(),
            proptest::collection::vec(proptest::sample::select(&NAMES[..]), 1..4)
        )
            .prop_map(|(l, n)| Owned::Dnssl(l, n)),
        (
            any::<u8>().prop_filter("a known type", move |k| !known.contains(k)),
            arb_data(2)
        )
            .prop_map(|(k, d)| Owned::Unknown(k, d)),
    ]
}

/// A message's fixed fields; the options are added in the test.
#[derive(Debug, Clone)]
enum Fixed {
    Rs,
    Ra(u8, bool, bool, RouterPreference, u16, u32, u32),
    Ns(Ipv6Addr),
    Na(bool, bool, bool, Ipv6Addr),
    Redirect(Ipv6Addr, Ipv6Addr),
}

fn arb_fixed() -> impl Strategy<Value = Fixed> {
    let preference = prop_oneof![
        Just(RouterPreference::Low),
        Just(RouterPreference::Medium),
        Just(RouterPreference::High)
    ];
    prop_oneof![
        Just(Fixed::Rs),
        (
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            preference,
            any::<u16>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(h, m, o, p, l, r, t)| Fixed::Ra(h, m, o, p, l, r, t)),
        arb_unicast().prop_map(Fixed::Ns),
        (any::<bool>(), any::<bool>(), any::<bool>(), arb_unicast())
            .prop_map(|(r, s, o, t)| Fixed::Na(r, s, o, t)),
        (arb_addr(), arb_unicast()).prop_map(|(t, d)| Fixed::Redirect(t, d)),
    ]
}

fn build<'a>(fixed: &Fixed, options: Options<'a>) -> Repr<'a> {
    match *fixed {
        Fixed::Rs => Repr::RouterSolicit { options },
        Fixed::Ra(hop_limit, managed, other_config, preference, lifetime, reachable, retrans) => {
            Repr::RouterAdvert {
                hop_limit,
                managed,
                other_config,
                preference,
                router_lifetime: lifetime,
                reachable_time: reachable,
                retrans_time: retrans,
                options,
            }
        }
        Fixed::Ns(target_addr) => Repr::NeighborSolicit {
            target_addr,
            options,
        },
        Fixed::Na(router, solicited, override_entry, target_addr) => Repr::NeighborAdvert {
            router,
            solicited,
            override_entry,
            target_addr,
            options,
        },
        Fixed::Redirect(target_addr, dest_addr) => Repr::Redirect {
            target_addr,
            dest_addr,
            options,
        },
    }
}

proptest! {
    #[test]
    fn emit_parse_round_trip(fixed in arb_fixed(),
                             owned in proptest::collection::vec(arb_option(), 0..6),
                             src in arb_addr(), dst in arb_addr()) {
        let list: Vec<NdpOption<'_>> = owned.iter().map(Owned::option).collect();
        let repr = build(&fixed, Options::new(&list));
        let addrs = Addresses::V6 { src, dst };
        let bytes = emit(repr, &addrs);
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let packet = icmpv6::Packet::new_checked(&bytes[..]).unwrap();
        let parsed = icmpv6::Repr::parse(&packet, &addrs);
        prop_assert_eq!(parsed, Ok(icmpv6::Repr::Ndp(repr)));
        // The parsed form emits the same bytes again.
        let Ok(icmpv6::Repr::Ndp(parsed)) = parsed else { unreachable!() };
        prop_assert_eq!(emit(parsed, &addrs), bytes);
    }

    #[test]
    fn any_options_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(options) = Options::parse(&bytes) {
            let count = options.iter().count();
            prop_assert!(count <= MAX_OPTIONS);
            prop_assert_eq!(options.buffer_len(), bytes.len());
            for option in &options {
                if let NdpOption::Dnssl { domains, .. } = option {
                    for domain in domains.iter() {
                        let _ = domain.to_string();
                        prop_assert!(domain.encoded_len() <= 255);
                    }
                }
                let _ = option.buffer_len();
            }
        }
    }

    #[test]
    fn option_shaped_bytes_never_panic(parts in proptest::collection::vec(
            (prop_oneof![Just(1u8), Just(3), Just(4), Just(5), Just(25), Just(31), any::<u8>()],
             0u8..6, proptest::collection::vec(any::<u8>(), 0..48)), 0..8)) {
        // Plausible option headers with random bodies, so the per-type parsers are reached.
        let mut bytes = Vec::new();
        for (kind, units, body) in parts {
            bytes.extend_from_slice(&[kind, units]);
            bytes.extend_from_slice(&body[..body.len().min(usize::from(units) * 8).saturating_sub(2)]);
        }
        let _ = Options::parse(&bytes).map(|o| o.iter().count());
    }

    #[test]
    fn any_message_never_panics(msg_type in 133u8..138, bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let mut bytes = bytes;
        if let Some(first) = bytes.first_mut() {
            *first = msg_type;
        }
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            if let Ok(repr) = Repr::parse(&packet) {
                let _ = repr.validate(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED, 255);
                prop_assert_eq!(repr.buffer_len(), bytes.len());
            }
            let _ = (packet.target_addr(), packet.dest_addr(), packet.retrans_time());
        }
    }
}
