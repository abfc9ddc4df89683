use super::*;
use crate::wire::ethernet::Address;
use crate::wire::ip::Addresses;
use crate::wire::{ethernet, fixtures, icmpv6, ipv6};
use proptest::prelude::*;

const NEIGHBOUR: &[u8] = include_bytes!("../fixtures/ndp_neighbour.pcap");
const DAD: &[u8] = include_bytes!("../fixtures/ndp_dad.pcap");
const ROUTER: &[u8] = include_bytes!("../fixtures/ndp_router.pcap");
const REDIRECT: &[u8] = include_bytes!("../fixtures/ndp_redirect.pcap");

const GUEST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 2);
const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 1);
const GUEST_MAC: Address = Address([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const GATEWAY_MAC: Address = Address([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);

/// Frame `index` of a capture: its IPv6 header and its ICMPv6 message.
fn message(pcap: &'static [u8], index: usize) -> (ipv6::Repr, &'static [u8]) {
    let frame = ethernet::Packet::new_checked(fixtures::frame(pcap, index)).unwrap();
    let packet = ipv6::Packet::new_checked(frame.payload()).unwrap();
    (ipv6::Repr::parse(&packet).unwrap(), packet.payload())
}

fn addrs(ip: &ipv6::Repr) -> Addresses {
    Addresses::V6 {
        src: ip.src_addr,
        dst: ip.dst_addr,
    }
}

/// Parses frame `index` through ICMPv6 (checksum verified) and checks RFC 4861's IPv6 rules.
fn parse_frame(pcap: &'static [u8], index: usize) -> Repr<'static> {
    let (ip, bytes) = message(pcap, index);
    let packet = icmpv6::Packet::new_checked(bytes).unwrap();
    let icmpv6::Repr::Ndp(repr) = icmpv6::Repr::parse(&packet, &addrs(&ip)).unwrap() else {
        panic!("not NDP");
    };
    assert_eq!(
        repr.validate(ip.src_addr, ip.dst_addr, ip.hop_limit),
        Ok(())
    );
    repr
}

fn parse(bytes: &[u8]) -> Result<Repr<'_>, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

/// Emits `repr` through ICMPv6, checksum included.
fn emit(repr: Repr<'_>, addrs: &Addresses) -> Vec<u8> {
    let repr = icmpv6::Repr::Ndp(repr);
    let mut out = vec![0xa5u8; repr.buffer_len()];
    repr.emit(&mut icmpv6::Packet::new_unchecked(&mut out[..]), addrs);
    out
}

#[test]
fn test_parse_neighbour() {
    let ns = parse_frame(NEIGHBOUR, 0);
    let slla = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    assert_eq!(
        ns,
        Repr::NeighborSolicit {
            target_addr: GATEWAY,
            options: Options::new(&slla),
        }
    );
    assert_eq!(ns.options().source_lladdr(), Some(GUEST_MAC));
    assert_eq!(message(NEIGHBOUR, 0).0.dst_addr, solicited_node(GATEWAY));

    let na = parse_frame(NEIGHBOUR, 1);
    let tlla = [NdpOption::TargetLinkLayerAddr(GATEWAY_MAC)];
    assert_eq!(
        na,
        Repr::NeighborAdvert {
            router: false,
            solicited: true,
            override_entry: true,
            target_addr: GATEWAY,
            options: Options::new(&tlla),
        }
    );
    assert_eq!(na.options().target_lladdr(), Some(GATEWAY_MAC));
    assert_eq!(na.options().source_lladdr(), None);
}

#[test]
fn test_parse_dad() {
    // From the unspecified address, with RFC 7527's nonce, which we do not interpret.
    let (ip, bytes) = message(DAD, 0);
    assert!(ip.src_addr.is_unspecified());
    let target: Ipv6Addr = "fd00:127::99".parse().unwrap();
    assert_eq!(ip.dst_addr, solicited_node(target));
    let ns = parse_frame(DAD, 0);
    let nonce = [NdpOption::Unknown {
        kind: option_type::NONCE,
        data: &bytes[26..32],
    }];
    assert_eq!(
        ns,
        Repr::NeighborSolicit {
            target_addr: target,
            options: Options::new(&nonce),
        }
    );
}

#[test]
fn test_parse_router() {
    let (ip, _) = message(ROUTER, 0);
    assert_eq!(ip.dst_addr, "ff02::2".parse::<Ipv6Addr>().unwrap());
    let slla = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    assert_eq!(
        parse_frame(ROUTER, 0),
        Repr::RouterSolicit {
            options: Options::new(&slla)
        }
    );

    let ra = parse_frame(ROUTER, 1);
    assert_eq!(ra, radvd_advert(&radvd_options(&DNS_SERVERS, &SEARCH)));
    let options: Vec<_> = ra.options().iter().collect();
    let NdpOption::Dnssl { domains, .. } = options[2] else {
        panic!("not DNSSL: {:?}", options[2]);
    };
    let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
    assert_eq!(names, ["containers.internal", "docker.internal"]);
    assert_eq!(ra.options().mtu(), Some(1500));
}

const DNS_SERVERS: [Ipv6Addr; 1] = [GATEWAY];
const SEARCH: [&str; 2] = ["containers.internal", "docker.internal."];

/// The options radvd sent, with the configuration of capture-v6.sh, in its order.
fn radvd_options<'a>(servers: &'a [Ipv6Addr], search: &'a [&'a str]) -> [NdpOption<'a>; 5] {
    [
        NdpOption::PrefixInfo(PrefixInfo {
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            valid_lifetime: 86400,
            preferred_lifetime: 14400,
            prefix: "fd00:127::".parse().unwrap(),
        }),
        NdpOption::Rdnss {
            lifetime: 1200,
            servers: Servers::new(servers),
        },
        NdpOption::Dnssl {
            lifetime: 1200,
            domains: Domains::new(search).unwrap(),
        },
        NdpOption::Mtu(1500),
        NdpOption::SourceLinkLayerAddr(GATEWAY_MAC),
    ]
}

fn radvd_advert<'a>(options: &'a [NdpOption<'a>]) -> Repr<'a> {
    Repr::RouterAdvert {
        hop_limit: 64,
        managed: false,
        other_config: true,
        preference: RouterPreference::Medium,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_time: 0,
        options: Options::new(options),
    }
}

#[test]
fn test_parse_redirect() {
    let redirect = parse_frame(REDIRECT, 0);
    let target: Ipv6Addr = "fd00:128::5".parse().unwrap();
    let Repr::Redirect {
        target_addr,
        dest_addr,
        options,
    } = redirect
    else {
        panic!("not a redirect: {redirect:?}");
    };
    assert_eq!((target_addr, dest_addr), (target, target));
    let options: Vec<_> = options.iter().collect();
    let [NdpOption::RedirectedHeader(quoted)] = options[..] else {
        panic!("{options:?}");
    };
    // The whole echo request fits: 40 + 8 + 56 bytes.
    let quoted = ipv6::Packet::new_checked(quoted).unwrap();
    assert_eq!((quoted.src_addr(), quoted.dst_addr()), (GUEST, target));
    assert_eq!(quoted.payload().len(), 64);
}

#[test]
fn test_emit() {
    // Messages built from typed options reproduce the kernel's and radvd's bytes exactly.
    let (ip, bytes) = message(ROUTER, 1);
    let options = radvd_options(&DNS_SERVERS, &SEARCH);
    assert_eq!(emit(radvd_advert(&options), &addrs(&ip)), bytes);

    let (ip, bytes) = message(NEIGHBOUR, 0);
    let slla = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    let ns = Repr::NeighborSolicit {
        target_addr: GATEWAY,
        options: Options::new(&slla),
    };
    assert_eq!(emit(ns, &addrs(&ip)), bytes);

    let (ip, bytes) = message(NEIGHBOUR, 1);
    let tlla = [NdpOption::TargetLinkLayerAddr(GATEWAY_MAC)];
    let na = Repr::NeighborAdvert {
        router: false,
        solicited: true,
        override_entry: true,
        target_addr: GATEWAY,
        options: Options::new(&tlla),
    };
    assert_eq!(emit(na, &addrs(&ip)), bytes);

    // And parsed messages come out as they went in.
    for (pcap, index) in [(ROUTER, 0), (ROUTER, 1), (DAD, 0), (REDIRECT, 0)] {
        let (ip, bytes) = message(pcap, index);
        let repr = parse_frame(pcap, index);
        assert_eq!(repr.buffer_len(), bytes.len());
        assert_eq!(emit(repr, &addrs(&ip)), bytes);
        // Without the ICMPv6 layer the checksum stays zero.
        let mut out = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..2], bytes[..2]);
        assert_eq!(out[2..4], [0, 0]);
        assert_eq!(out[4..], bytes[4..]);
    }
}

/// The neighbour solicitation's bytes, changed by `change`.
fn changed_ns(change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = message(NEIGHBOUR, 0).1.to_vec();
    change(&mut bytes);
    bytes
}

#[test]
fn zero_length_option_is_refused() {
    // RFC 4861 §4.6: it would loop forever.
    let bytes = changed_ns(|b| b[25] = 0);
    assert_eq!(parse(&bytes), Err(Error::OptionZeroLength));
    // Also after a good option.
    let bytes = changed_ns(|b| b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]));
    assert_eq!(parse(&bytes), Err(Error::OptionZeroLength));
    assert_eq!(
        Options::parse(&[99, 0]).err(),
        Some(Error::OptionZeroLength)
    );
}

#[test]
fn bad_options_are_refused() {
    // Reaching past the message, or a lone byte after the last option.
    assert_eq!(
        parse(&changed_ns(|b| b[25] = 2)),
        Err(Error::OptionTruncated)
    );
    assert_eq!(
        parse(&changed_ns(|b| b.push(1))),
        Err(Error::OptionTruncated)
    );
    // A link-layer address option of two units: not Ethernet's (RFC 2464 §8).
    let bytes = changed_ns(|b| {
        b[25] = 2;
        b.extend_from_slice(&[0; 8]);
    });
    assert_eq!(parse(&bytes), Err(Error::BadOptionLength));
    // Known options with lengths their formats do not have.
    for (kind, units) in [(3u8, 3u8), (5, 2), (25, 2), (25, 4), (31, 1)] {
        let mut option = vec![0u8; usize::from(units) * 8];
        option[0] = kind;
        option[1] = units;
        assert_eq!(
            Options::parse(&option).err(),
            Some(Error::BadOptionLength),
            "type {kind}, {units} units"
        );
    }
    // Unknown options of any length are skipped, up to the bound.
    let many: Vec<u8> = [200u8, 1, 0, 0, 0, 0, 0, 0].repeat(MAX_OPTIONS);
    let options = Options::parse(&many).unwrap();
    assert_eq!(options.iter().count(), MAX_OPTIONS);
    let more: Vec<u8> = [200u8, 1, 0, 0, 0, 0, 0, 0].repeat(MAX_OPTIONS + 1);
    assert_eq!(Options::parse(&more).err(), Some(Error::TooManyOptions));
}

/// A DNSSL option whose variable part is `names` (padded to whole units with zeros).
fn dnssl(names: &[u8]) -> Vec<u8> {
    let len = (8 + names.len()).div_ceil(8) * 8;
    let mut option = vec![0u8; len];
    option[0] = option_type::DNSSL;
    option[1] = (len / 8) as u8;
    option[8..8 + names.len()].copy_from_slice(names);
    option
}

#[test]
fn domain_names_are_checked() {
    let ok = dnssl(b"\x07example\x03org\x00");
    let options = Options::parse(&ok).unwrap();
    let Some(NdpOption::Dnssl { domains, .. }) = options.iter().next() else {
        panic!();
    };
    assert_eq!(domains, Domains::new(&["Example.ORG"]).unwrap());
    // A label running past the option, a name without its end, a compression pointer,
    // padding that is not zero.
    for bad in [
        &b"\x09example\x03org\x00"[..],
        b"\x07example\x03org\x03com",
        b"\x07example\xc0\x0c\x00",
        b"\x07example\x00\x00\x01",
    ] {
        let option = dnssl(bad);
        assert_eq!(
            Options::parse(&option).err(),
            Some(Error::BadDomainName),
            "{bad:?}"
        );
    }
    // A name of 255 bytes is the most (RFC 1035 §2.3.4).
    let label = [&[63u8][..], &[b'a'; 63]].concat();
    let longest = [label.repeat(3), vec![61], vec![b'b'; 61], vec![0]].concat();
    assert_eq!(longest.len(), 255);
    assert!(Options::parse(&dnssl(&longest)).is_ok());
    let too_long = [label.repeat(3), vec![62], vec![b'b'; 62], vec![0]].concat();
    assert_eq!(
        Options::parse(&dnssl(&too_long)).err(),
        Some(Error::BadDomainName)
    );

    assert!(Domains::new(&["a.b", "c."]).is_ok());
    let long_label = "x".repeat(64);
    for bad in ["", ".", "a..b", long_label.as_str()] {
        assert_eq!(
            Domains::new(&[bad]).err(),
            Some(Error::BadDomainName),
            "{bad:?}"
        );
    }
    assert_eq!(Domains::new(&[]).err(), Some(Error::BadDomainName));
}

#[test]
fn message_checks() {
    let bytes = changed_ns(|b| b[1] = 1);
    assert_eq!(parse(&bytes), Err(Error::BadCode));
    let bytes = changed_ns(|b| b[8] = 0xff);
    assert_eq!(parse(&bytes), Err(Error::MulticastTarget));
    let bytes = changed_ns(|b| b[0] = 128);
    assert_eq!(parse(&bytes), Err(Error::NotNdp));
    assert_eq!(parse(&[]), Err(Error::Truncated));
    for cut in 0..24 {
        assert_eq!(
            parse(&message(NEIGHBOUR, 0).1[..cut]),
            Err(Error::Truncated)
        );
    }
}

#[test]
fn validate_checks_the_ip_header() {
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let ns = parse_frame(NEIGHBOUR, 0);
    assert_eq!(
        ns.validate(GUEST, solicited_node(GATEWAY), 64),
        Err(Error::BadHopLimit)
    );
    assert_eq!(
        ns.validate(Ipv6Addr::UNSPECIFIED, solicited_node(GATEWAY), 255),
        Err(Error::LinkLayerFromUnspecified)
    );
    let dad = parse_frame(DAD, 0);
    assert_eq!(
        dad.validate(Ipv6Addr::UNSPECIFIED, all_nodes, 255),
        Err(Error::DadNotToSolicitedNode)
    );
    let rs = parse_frame(ROUTER, 0);
    assert_eq!(
        rs.validate(Ipv6Addr::UNSPECIFIED, all_nodes, 255),
        Err(Error::LinkLayerFromUnspecified)
    );
    let ra = parse_frame(ROUTER, 1);
    assert_eq!(
        ra.validate(GATEWAY, GUEST, 255),
        Err(Error::SourceNotLinkLocal)
    );
    let na = parse_frame(NEIGHBOUR, 1);
    assert_eq!(
        na.validate(GATEWAY, all_nodes, 255),
        Err(Error::SolicitedToMulticast)
    );
    let redirect = parse_frame(REDIRECT, 0);
    assert_eq!(
        redirect.validate(GATEWAY, GUEST, 255),
        Err(Error::SourceNotLinkLocal)
    );
    let Repr::Redirect { options, .. } = redirect else {
        panic!()
    };
    let elsewhere = Repr::Redirect {
        target_addr: GATEWAY,
        dest_addr: "fd00:128::5".parse().unwrap(),
        options,
    };
    assert_eq!(
        elsewhere.validate(link_local, GUEST, 255),
        Err(Error::BadRedirectTarget)
    );
}

#[test]
fn solicited_node_groups() {
    assert_eq!(
        solicited_node("fd00:127::5894:efff:fee4:cee".parse().unwrap()),
        "ff02::1:ffe4:cee".parse::<Ipv6Addr>().unwrap()
    );
    assert!(is_solicited_node("ff02::1:ff00:1".parse().unwrap()));
    assert!(!is_solicited_node("ff02::1".parse().unwrap()));
}

#[test]
fn every_truncation_is_refused() {
    // Cut anywhere and given a right checksum again, a message is refused by NDP itself,
    // unless the cut falls between options, where what is left is a whole message.
    for (pcap, index) in [
        (NEIGHBOUR, 0),
        (NEIGHBOUR, 1),
        (DAD, 0),
        (ROUTER, 0),
        (ROUTER, 1),
        (REDIRECT, 0),
    ] {
        let (ip, bytes) = message(pcap, index);
        let repr = parse_frame(pcap, index);
        let mut boundary = repr.buffer_len() - repr.options().buffer_len();
        let mut boundaries = vec![boundary];
        for option in repr.options() {
            boundary += option.buffer_len();
            boundaries.push(boundary);
        }
        for cut in 0..bytes.len() {
            let mut cut_bytes = bytes[..cut].to_vec();
            if cut >= icmpv6::HEADER_LEN {
                icmpv6::Packet::new_unchecked(&mut cut_bytes[..]).fill_checksum(&addrs(&ip));
            }
            let packet = icmpv6::Packet::new_checked(&cut_bytes[..]);
            let result = packet.and_then(|p| icmpv6::Repr::parse(&p, &addrs(&ip)));
            assert_eq!(
                result.is_ok(),
                boundaries.contains(&cut),
                "frame {index} cut at {cut}: {result:?}"
            );
        }
    }
}

mod round_trip;
