//! Router advertisements (RFC 4861 §6.2) from the gateway's link-local address: periodic
//! ones to all nodes, and answers to router solicitations.
//!
//! Each advertisement names the gateway a default router ([`RaConfig::router_lifetime`]) and
//! carries: its link-layer address, the link MTU (§4.6.4), the prefix with the on-link and
//! autonomous flags (§4.6.2; a /64, so hosts form SLAAC addresses, RFC 4862), and the DNS
//! servers and search list of RFC 8106 (RDNSS, DNSSL) naming the gateway. M is clear (no
//! address from DHCPv6 needed) and O set (DHCPv6 has further configuration).
//!
//! Timing (§6.2.4): the first three unsolicited advertisements go at most 16 s apart, then
//! one every random interval between [`RaConfig::min_interval`] and
//! [`RaConfig::max_interval`]. A solicitation from an address is answered at once by unicast
//! to it (§6.2.6 allows it); one from the unspecified address by a multicast advertisement,
//! at most one per 3 s (MIN_DELAY_BETWEEN_RAS), a later one brought forward instead. Only
//! solicitations that pass RFC 4861's checks ([`NdpRepr::validate`]) get one.

use std::net::Ipv6Addr;
use std::time::Duration;

use bytes::Bytes;
use stack::time::Instant;
use stack::wire::{
    EthernetAddress, EthernetRepr, Icmpv6Repr, Ipv6Repr, NdpDomains, NdpOption, NdpOptions,
    NdpPrefixInfo, NdpRepr, NdpRouterPreference, NdpServers, ndp,
};

use super::{Gateway, Outcome};

/// RFC 4861 §10: MAX_INITIAL_RTR_ADVERT_INTERVAL and MAX_INITIAL_RTR_ADVERTISEMENTS.
const INITIAL_INTERVAL: Duration = Duration::from_secs(16);
const INITIAL_COUNT: u8 = 3;
/// RFC 4861 §10: MIN_DELAY_BETWEEN_RAS.
const MIN_DELAY_BETWEEN_RAS: Duration = Duration::from_secs(3);
/// ff02::1 and its Ethernet address (RFC 2464 §7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);

/// What router advertisements say, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// The on-link prefix hosts configure addresses in.
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// The prefix's lifetimes (RFC 4861 §6.2.1's defaults: 30 days valid, 7 preferred).
    pub valid_lifetime: Duration,
    pub preferred_lifetime: Duration,
    /// How long hosts may use the gateway as default router (default 3 × max interval).
    pub router_lifetime: Duration,
    /// MinRtrAdvInterval and MaxRtrAdvInterval (defaults 200 s and 600 s).
    pub min_interval: Duration,
    pub max_interval: Duration,
    /// RDNSS and DNSSL (RFC 8106); none when empty.
    pub dns_servers: Vec<Ipv6Addr>,
    pub search_domains: Vec<String>,
    /// Their lifetime (RFC 8106 §5.1: between max interval and twice it; default 2 × max).
    pub dns_lifetime: Duration,
    /// M and O.
    pub managed: bool,
    pub other_config: bool,
    /// Seeds the intervals' randomness.
    pub seed: u64,
}

impl RaConfig {
    /// RFC 4861's defaults for `prefix`/64, with `dns` as RDNSS.
    pub fn for_prefix(prefix: Ipv6Addr, dns: Ipv6Addr) -> RaConfig {
        let max = Duration::from_secs(600);
        RaConfig {
            prefix,
            prefix_len: 64,
            valid_lifetime: Duration::from_secs(2_592_000),
            preferred_lifetime: Duration::from_secs(604_800),
            router_lifetime: max * 3,
            min_interval: Duration::from_secs(200),
            max_interval: max,
            dns_servers: vec![dns],
            search_domains: Vec::new(),
            dns_lifetime: max * 2,
            managed: false,
            other_config: true,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// The advertiser's timers and counters.
#[derive(Debug)]
pub(super) struct RaState {
    pub(super) config: RaConfig,
    next: Option<Instant>,
    initial_left: u8,
    last_multicast: Option<Instant>,
    rng: u64,
    /// Unsolicited (and delayed solicited) advertisements waiting for `poll_transmit`.
    due: bool,
}

fn secs(d: Duration) -> u32 {
    d.as_secs().min(u64::from(u32::MAX)) as u32
}

impl RaState {
    pub(super) fn new(config: RaConfig) -> RaState {
        RaState {
            rng: config.seed | 1,
            config,
            next: None,
            initial_left: INITIAL_COUNT,
            last_multicast: None,
            due: false,
        }
    }

    /// A random interval in `min..=max` (xorshift64*).
    fn interval(&mut self) -> Duration {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let (min, max) = (
            self.config.min_interval.as_millis() as u64,
            self.config.max_interval.as_millis() as u64,
        );
        let span = max.saturating_sub(min).saturating_add(1);
        Duration::from_millis(min + r % span)
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        match self.next {
            // Not started: at once.
            None => Some(Instant::ZERO),
            Some(at) => Some(at),
        }
    }

    /// Marks an unsolicited advertisement due if its time has come, and schedules the next.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_some_and(|at| at > now) {
            return;
        }
        self.due = true;
        self.last_multicast = Some(now);
        let mut gap = self.interval();
        if self.initial_left > 0 {
            self.initial_left -= 1;
            gap = gap.min(INITIAL_INTERVAL);
        }
        self.next = Some(now + gap);
    }

    /// A solicitation from the unspecified address: a multicast advertisement now, or as soon
    /// as MIN_DELAY_BETWEEN_RAS allows. Whether one may go now.
    fn multicast_now(&mut self, now: Instant) -> bool {
        match self.last_multicast {
            Some(last) if now.saturating_duration_since(last) < MIN_DELAY_BETWEEN_RAS => {
                let soon = last + MIN_DELAY_BETWEEN_RAS;
                if self.next.is_none_or(|at| at > soon) {
                    self.next = Some(soon);
                }
                false
            }
            _ => {
                self.last_multicast = Some(now);
                true
            }
        }
    }

    pub(super) fn take_due(&mut self) -> bool {
        std::mem::take(&mut self.due)
    }
}

impl Gateway {
    /// RFC 4861 §6.2.6: a (valid) router solicitation gets an advertisement.
    pub(super) fn router_solicit(
        &mut self,
        now: Instant,
        eth: EthernetRepr,
        ip: &Ipv6Repr,
        options: &NdpOptions<'_>,
    ) -> Outcome {
        let Some(v6) = self.v6.clone() else {
            return Outcome::Dropped(stack::ingress::DropReason::NdpUnhandled);
        };
        self.counters.router_solicits += 1;
        if ip.src_addr.is_unspecified() {
            if !v6.lock().ra.multicast_now(now) {
                // Brought forward instead; nothing to send now.
                return Outcome::Dropped(stack::ingress::DropReason::NdpRateLimited);
            }
            let frame = self.router_advert(ALL_NODES_MAC, ALL_NODES);
            return Outcome::Reply(frame);
        }
        let mac = options.source_lladdr().unwrap_or(eth.src_addr);
        let frame = self.router_advert(mac, ip.src_addr);
        Outcome::Reply(frame)
    }

    /// The periodic advertisement, if one is due ([`Gateway::poll_transmit`]).
    pub(super) fn poll_router_advert(&mut self) -> Option<Bytes> {
        if !self.v6_timers {
            return None;
        }
        if self.v6.as_ref()?.lock().ra.take_due() {
            return Some(self.router_advert(ALL_NODES_MAC, ALL_NODES));
        }
        None
    }

    /// An advertisement to `dst` (`dst_mac`). See the module docs for what it carries.
    fn router_advert(&mut self, dst_mac: EthernetAddress, dst: Ipv6Addr) -> Bytes {
        let Some(v6) = self.v6.as_ref() else {
            return Bytes::new();
        };
        let c = v6.lock().ra.config.clone();
        let names: Vec<&str> = c.search_domains.iter().map(String::as_str).collect();
        let mut options = vec![
            NdpOption::SourceLinkLayerAddr(self.mac),
            NdpOption::Mtu(self.mtu as u32),
            NdpOption::PrefixInfo(NdpPrefixInfo {
                prefix_len: c.prefix_len,
                on_link: true,
                autonomous: c.prefix_len == 64,
                valid_lifetime: secs(c.valid_lifetime),
                preferred_lifetime: secs(c.preferred_lifetime),
                prefix: c.prefix,
            }),
        ];
        if !c.dns_servers.is_empty() {
            options.push(NdpOption::Rdnss {
                lifetime: secs(c.dns_lifetime),
                servers: NdpServers::new(&c.dns_servers),
            });
        }
        if let Ok(domains) = NdpDomains::new(&names) {
            options.push(NdpOption::Dnssl {
                lifetime: secs(c.dns_lifetime),
                domains,
            });
        }
        let advert = Icmpv6Repr::Ndp(NdpRepr::RouterAdvert {
            hop_limit: super::DEFAULT_TTL,
            managed: c.managed,
            other_config: c.other_config,
            preference: NdpRouterPreference::Medium,
            router_lifetime: secs(c.router_lifetime).min(u32::from(u16::MAX)) as u16,
            reachable_time: 0,
            retrans_time: 0,
            options: NdpOptions::new(&options),
        });
        let src = self.link_local();
        let frame = self.icmpv6_frame(dst_mac, src, dst, ndp::HOP_LIMIT, &advert);
        self.counters.router_adverts += 1;
        frame
    }
}
