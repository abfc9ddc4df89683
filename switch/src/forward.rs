//! The forwarding decision, sans-IO: which port(s) a frame goes to.
//!
//! [`Switch::handle_frame`] takes the ingress port, the frame's bytes and the time; it learns
//! the source address and returns a [`Decision`]:
//! - [`Decision::Unicast`] to the one port a known unicast destination lives on;
//! - [`Decision::Flood`] for broadcast, multicast and unknown unicast: the caller sends a copy to
//!   every port [`Switch::flood_ports`] yields (every attached port but the ingress one);
//! - [`Decision::Drop`] with a [`DropReason`], each reason counted.
//!
//! Contracts: no frame is ever sent back out of its ingress port (a known destination on the
//! ingress port is dropped as [`DropReason::Hairpin`]); frames from a port that is not attached
//! (late frames of a closed port) are dropped before learning, so a dead port never re-enters
//! the table; VLAN-tagged (802.1Q/802.1ad) and IEEE 802.3 length frames are dropped, as are
//! frames with a group or all-zero source. A frame claiming a static entry's address (the
//! gateway's) from another port is dropped rather than forwarded. Per frame the cost is two hash
//! lookups and one ordered-set membership test; nothing scans. The gateway is an ordinary port
//! whose MAC is a static table entry.
//!
//! One thread owns a `Switch`; there is no internal locking.

use std::collections::BTreeSet;
use std::time::Duration;

use stack::time::Instant;
use stack::wire::{EthernetAddress, EthernetError, EthernetFrame, EthernetRepr};

use crate::mac_table::{DEFAULT_MAX_AGE, DEFAULT_MAX_ENTRIES, Learn, MacTable, PortId};

pub use forwarder::gateway::DEFAULT_GATEWAY_MAC;

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// To this one port (never the ingress port).
    Unicast(PortId),
    /// To every port of [`Switch::flood_ports`].
    Flood,
    /// Nowhere.
    Drop(DropReason),
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    Truncated,
    /// Carries an 802.1Q or 802.1ad tag; we do not switch VLANs.
    VlanTagged,
    /// An IEEE 802.3 length field instead of an EtherType.
    NotEthernetII,
    /// Source is a group address or all-zero (IEEE 802.1D never learns those).
    InvalidSource,
    /// Source is a static entry's (the gateway's) address, sent from another port.
    SpoofedStaticSource,
    /// The destination lives on the ingress port.
    Hairpin,
    /// The ingress port is not attached (it closed while the frame was queued).
    UnknownIngress,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 7] = [
        DropReason::Truncated,
        DropReason::VlanTagged,
        DropReason::NotEthernetII,
        DropReason::InvalidSource,
        DropReason::SpoofedStaticSource,
        DropReason::Hairpin,
        DropReason::UnknownIngress,
    ];

    /// A dense index, for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name for logs and stats.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::NotEthernetII => "not_ethernet_ii",
            DropReason::InvalidSource => "invalid_source",
            DropReason::SpoofedStaticSource => "spoofed_static_source",
            DropReason::Hairpin => "hairpin",
            DropReason::UnknownIngress => "unknown_ingress",
        }
    }
}

/// How to build a [`Switch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// The gateway's port; attached at once.
    pub gateway_port: PortId,
    /// The gateway's MAC: a static entry on `gateway_port`.
    pub gateway_mac: EthernetAddress,
    /// Bound on learned addresses.
    pub max_entries: usize,
    /// Idle time after which a learned address is forgotten.
    pub max_age: Duration,
}

impl Default for SwitchConfig {
    fn default() -> SwitchConfig {
        SwitchConfig {
            gateway_port: PortId(0),
            gateway_mac: DEFAULT_GATEWAY_MAC,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

/// Frame counters; they only ever grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchCounters {
    pub unicast: u64,
    pub flooded: u64,
    dropped: [u64; DropReason::ALL.len()],
}

impl SwitchCounters {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// Frames dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// An L2 learning switch's state and decision logic. See the module docs.
#[derive(Debug)]
pub struct Switch {
    table: MacTable,
    ports: BTreeSet<PortId>,
    gateway_port: PortId,
    counters: SwitchCounters,
    /// Bumped whenever an address's port changes or an entry goes: a cache of lookups made
    /// before is stale once it moves.
    generation: u64,
}

impl Switch {
    pub fn new(config: &SwitchConfig) -> Switch {
        let mut table = MacTable::new(config.max_entries, config.max_age);
        table.insert_static(config.gateway_mac, config.gateway_port);
        let mut ports = BTreeSet::new();
        ports.insert(config.gateway_port);
        Switch {
            table,
            ports,
            gateway_port: config.gateway_port,
            counters: SwitchCounters::default(),
            generation: 0,
        }
    }

    /// Attaches `port`; returns false if it already was.
    pub fn add_port(&mut self, port: PortId) -> bool {
        self.ports.insert(port)
    }

    /// Detaches `port` and forgets the addresses learned on it; returns whether it was attached.
    /// The gateway port cannot be removed.
    pub fn remove_port(&mut self, port: PortId) -> bool {
        self.detach(port).is_some()
    }

    /// Detaches `port` and returns the addresses that had been learned on it (the guests that
    /// went away with it, whose flows the forwarder may drop); `None` if it was not attached
    /// or is the gateway's. Addresses whose entries aged out and were swept are among them,
    /// within the table's memory bound ([`MacTable::flush_port`]); one that moved to another
    /// port is not.
    pub fn detach(&mut self, port: PortId) -> Option<Vec<EthernetAddress>> {
        if port == self.gateway_port {
            return None;
        }
        let gone = self.table.flush_port(port);
        self.generation += 1;
        self.ports.remove(&port).then_some(gone)
    }

    pub fn gateway_port(&self) -> PortId {
        self.gateway_port
    }

    /// Decides where `frame`, received on `ingress` at `now`, goes; learns its source.
    pub fn handle_frame(&mut self, now: Instant, ingress: PortId, frame: &[u8]) -> Decision {
        let decision = self.decide(now, ingress, frame);
        match decision {
            Decision::Unicast(_) => self.counters.unicast += 1,
            Decision::Flood => self.counters.flooded += 1,
            Decision::Drop(reason) => {
                if let Some(n) = self.counters.dropped.get_mut(reason.index()) {
                    *n += 1;
                }
            }
        }
        decision
    }

    fn decide(&mut self, now: Instant, ingress: PortId, frame: &[u8]) -> Decision {
        if !self.ports.contains(&ingress) {
            return Decision::Drop(DropReason::UnknownIngress);
        }
        let repr = match EthernetFrame::new_checked(frame).and_then(|f| EthernetRepr::parse(&f)) {
            Ok(repr) => repr,
            Err(EthernetError::Truncated) => return Decision::Drop(DropReason::Truncated),
            Err(EthernetError::VlanTagged) => return Decision::Drop(DropReason::VlanTagged),
            Err(EthernetError::NotEthernetII) => {
                return Decision::Drop(DropReason::NotEthernetII);
            }
        };
        match self.table.learn(now, repr.src_addr, ingress) {
            Learn::InvalidSource => return Decision::Drop(DropReason::InvalidSource),
            Learn::StaticConflict { .. } => {
                return Decision::Drop(DropReason::SpoofedStaticSource);
            }
            Learn::Moved { .. } => self.generation += 1,
            Learn::Learned | Learn::Refreshed | Learn::TableFull => {}
        }
        if repr.dst_addr.is_multicast() {
            return Decision::Flood;
        }
        match self.table.lookup(now, repr.dst_addr) {
            Some(port) if port == ingress => Decision::Drop(DropReason::Hairpin),
            Some(port) => Decision::Unicast(port),
            None => Decision::Flood,
        }
    }

    /// The ports a flooded frame from `ingress` goes to: every attached port but `ingress`.
    pub fn flood_ports(&self, ingress: PortId) -> impl Iterator<Item = PortId> + '_ {
        self.ports.iter().copied().filter(move |&p| p != ingress)
    }

    /// Attached ports, the gateway's included.
    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.iter().copied()
    }

    /// Sweeps aged table entries; call it from a timer (see [`MacTable::expire`]).
    pub fn expire(&mut self, now: Instant) {
        let before = self.table.len();
        self.table.expire(now);
        if self.table.len() != before {
            self.generation += 1;
        }
    }

    /// Where `dst` lives, without learning anything (frames the gateway sends).
    pub fn lookup(&self, now: Instant, dst: EthernetAddress) -> Option<PortId> {
        self.table.lookup(now, dst)
    }

    /// Changes whenever an address moves or is forgotten; see [`Switch`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Counts decisions taken outside [`Switch::handle_frame`] (by a cache of its answers).
    pub fn count(&mut self, decision: Decision, n: u64) {
        match decision {
            Decision::Unicast(_) => self.counters.unicast += n,
            Decision::Flood => self.counters.flooded += n,
            Decision::Drop(reason) => {
                if let Some(c) = self.counters.dropped.get_mut(reason.index()) {
                    *c += n;
                }
            }
        }
    }

    pub fn table(&self) -> &MacTable {
        &self.table
    }

    pub fn counters(&self) -> &SwitchCounters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: PortId = PortId(0);
    const A: PortId = PortId(1);
    const B: PortId = PortId(2);
    const C: PortId = PortId(3);

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }

    fn frame(dst: EthernetAddress, src: EthernetAddress) -> Vec<u8> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(dst.as_bytes());
        f.extend_from_slice(src.as_bytes());
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    fn switch() -> Switch {
        let mut s = Switch::new(&SwitchConfig::default());
        for p in [A, B, C] {
            assert!(s.add_port(p));
        }
        s
    }

    const T0: Instant = Instant::ZERO;

    #[test]
    fn unknown_unicast_floods_then_known_goes_straight() {
        let mut s = switch();
        assert_eq!(
            s.handle_frame(T0, A, &frame(mac(2), mac(1))),
            Decision::Flood
        );
        assert_eq!(s.flood_ports(A).collect::<Vec<_>>(), vec![GW, B, C]);
        assert_eq!(
            s.handle_frame(T0, B, &frame(mac(1), mac(2))),
            Decision::Unicast(A)
        );
        assert_eq!(
            s.handle_frame(T0, A, &frame(mac(2), mac(1))),
            Decision::Unicast(B)
        );
        assert_eq!(s.counters().unicast, 2);
        assert_eq!(s.counters().flooded, 1);
    }

    #[test]
    fn broadcast_and_multicast_flood_even_when_known() {
        let mut s = switch();
        let bcast = frame(EthernetAddress::BROADCAST, mac(1));
        assert_eq!(s.handle_frame(T0, A, &bcast), Decision::Flood);
        let mcast = frame(EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), mac(2));
        assert_eq!(s.handle_frame(T0, B, &mcast), Decision::Flood);
        assert_eq!(s.flood_ports(B).collect::<Vec<_>>(), vec![GW, A, C]);
    }

    #[test]
    fn gateway_is_a_static_port() {
        let mut s = switch();
        let to_gw = frame(DEFAULT_GATEWAY_MAC, mac(1));
        assert_eq!(s.handle_frame(T0, A, &to_gw), Decision::Unicast(GW));
        // From the gateway to the guest, learned above.
        let from_gw = frame(mac(1), DEFAULT_GATEWAY_MAC);
        assert_eq!(s.handle_frame(T0, GW, &from_gw), Decision::Unicast(A));
        // A guest claiming the gateway's MAC is dropped and does not move it.
        let spoof = frame(mac(1), DEFAULT_GATEWAY_MAC);
        assert_eq!(
            s.handle_frame(T0, B, &spoof),
            Decision::Drop(DropReason::SpoofedStaticSource)
        );
        assert_eq!(s.table().lookup(T0, DEFAULT_GATEWAY_MAC), Some(GW));
        assert_eq!(s.table().counters().static_conflicts, 1);
        // Never aged.
        let later = Instant::from_millis(10_000_000);
        assert_eq!(s.handle_frame(later, A, &to_gw), Decision::Unicast(GW));
        // Never removable.
        assert!(!s.remove_port(GW));
    }

    #[test]
    fn no_hairpin() {
        let mut s = switch();
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(3)));
        let d = s.handle_frame(T0, A, &frame(mac(3), mac(1)));
        assert_eq!(d, Decision::Drop(DropReason::Hairpin));
        // A frame to itself, too.
        let d = s.handle_frame(T0, A, &frame(mac(1), mac(1)));
        assert_eq!(d, Decision::Drop(DropReason::Hairpin));
        assert_eq!(s.counters().dropped(DropReason::Hairpin), 2);
        assert!(s.flood_ports(A).all(|p| p != A));
    }

    #[test]
    fn moved_address_follows_its_new_port() {
        let mut s = switch();
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        s.handle_frame(T0, B, &frame(EthernetAddress::BROADCAST, mac(1)));
        assert_eq!(s.table().counters().moved, 1);
        assert_eq!(
            s.handle_frame(T0, C, &frame(mac(1), mac(3))),
            Decision::Unicast(B)
        );
    }

    #[test]
    fn aged_destination_floods_again() {
        let mut s = Switch::new(&SwitchConfig {
            max_age: Duration::from_secs(10),
            ..SwitchConfig::default()
        });
        s.add_port(A);
        s.add_port(B);
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        let t = Instant::from_millis(9_999);
        assert_eq!(
            s.handle_frame(t, B, &frame(mac(1), mac(2))),
            Decision::Unicast(A)
        );
        let t = Instant::from_millis(20_000);
        s.expire(t);
        assert_eq!(s.table().counters().aged, 2);
        assert_eq!(
            s.handle_frame(t, B, &frame(mac(1), mac(2))),
            Decision::Flood
        );
    }

    #[test]
    fn full_table_still_forwards() {
        let mut s = Switch::new(&SwitchConfig {
            max_entries: 1,
            ..SwitchConfig::default()
        });
        s.add_port(A);
        s.add_port(B);
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        // mac(2) cannot be learned, but its frame to mac(1) still goes there.
        assert_eq!(
            s.handle_frame(T0, B, &frame(mac(1), mac(2))),
            Decision::Unicast(A)
        );
        assert_eq!(s.table().counters().table_full, 1);
        // And frames to mac(2) flood.
        assert_eq!(
            s.handle_frame(T0, A, &frame(mac(2), mac(1))),
            Decision::Flood
        );
        assert_eq!(s.table().lookup(T0, DEFAULT_GATEWAY_MAC), Some(GW));
    }

    #[test]
    fn malformed_and_vlan_frames_are_dropped_and_counted() {
        let mut s = switch();
        let short = [0u8; 13];
        assert_eq!(
            s.handle_frame(T0, A, &short),
            Decision::Drop(DropReason::Truncated)
        );
        let mut vlan = frame(mac(2), mac(1));
        vlan[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            s.handle_frame(T0, A, &vlan),
            Decision::Drop(DropReason::VlanTagged)
        );
        vlan[12..14].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(
            s.handle_frame(T0, A, &vlan),
            Decision::Drop(DropReason::VlanTagged)
        );
        let mut llc = frame(mac(2), mac(1));
        llc[12..14].copy_from_slice(&[0x00, 0x2e]);
        assert_eq!(
            s.handle_frame(T0, A, &llc),
            Decision::Drop(DropReason::NotEthernetII)
        );
        let bad_src = frame(mac(2), EthernetAddress::BROADCAST);
        assert_eq!(
            s.handle_frame(T0, A, &bad_src),
            Decision::Drop(DropReason::InvalidSource)
        );
        assert_eq!(s.counters().dropped(DropReason::VlanTagged), 2);
        assert_eq!(s.counters().dropped_total(), 5);
        // Nothing was learned from any of them.
        assert_eq!(s.table().dynamic_len(), 0);
    }

    #[test]
    fn removed_port_is_forgotten_and_its_late_frames_dropped() {
        let mut s = switch();
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        assert!(s.remove_port(A));
        assert!(!s.remove_port(A));
        assert_eq!(s.table().lookup(T0, mac(1)), None);
        assert_eq!(
            s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1))),
            Decision::Drop(DropReason::UnknownIngress)
        );
        assert_eq!(s.table().lookup(T0, mac(1)), None);
        assert_eq!(s.flood_ports(B).collect::<Vec<_>>(), vec![GW, C]);
    }

    #[test]
    fn detach_returns_the_addresses_learned_on_the_port() {
        let mut s = switch();
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(3)));
        s.handle_frame(T0, B, &frame(EthernetAddress::BROADCAST, mac(2)));
        let mut gone = s.detach(A).unwrap();
        gone.sort_by_key(|m| m.0);
        assert_eq!(gone, vec![mac(1), mac(3)]);
        assert_eq!(s.detach(A), None);
        assert_eq!(s.detach(GW), None);
        assert_eq!(s.detach(C), Some(Vec::new()));
        assert_eq!(s.table().lookup(T0, mac(2)), Some(B));
    }

    #[test]
    fn detach_reports_addresses_that_aged_out() {
        let mut s = Switch::new(&SwitchConfig {
            max_age: Duration::from_secs(10),
            ..SwitchConfig::default()
        });
        s.add_port(A);
        s.add_port(B);
        s.handle_frame(T0, A, &frame(EthernetAddress::BROADCAST, mac(1)));
        s.handle_frame(T0, B, &frame(EthernetAddress::BROADCAST, mac(2)));
        // Both age out and the sweep removes them.
        let later = Instant::from_millis(20_000);
        s.expire(later);
        assert_eq!(s.table().dynamic_len(), 0);
        assert_eq!(s.table().lookup(later, mac(1)), None);
        // The guest that was behind A is still reported when A goes.
        assert_eq!(s.detach(A), Some(vec![mac(1)]));
        assert_eq!(s.detach(B), Some(vec![mac(2)]));
    }

    #[test]
    fn drop_reason_indices_are_dense() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.as_str().is_empty());
        }
    }
}
