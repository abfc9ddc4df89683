//! Neighbor Discovery addressed to the gateway (RFC 4861): solicitations for its addresses
//! and the virtual ones get an advertisement; router solicitations go to `ra`; and the guests'
//! own solicitations and advertisements tell where their addresses are
//! ([`Gateway::take_neighbour`]), for the forwarder's connections into them.

use std::net::{IpAddr, Ipv6Addr};

use stack::ingress::DropReason;
use stack::time::Instant;
use stack::wire::{
    EthernetAddress, EthernetRepr, Icmpv6Repr, Ipv6Repr, NdpOption, NdpOptions, NdpRepr, ndp,
};

use super::{ALL_NODES, Gateway, Outcome};

impl Gateway {
    /// RFC 4861 §7.2.3-4: a valid solicitation for one of our addresses gets an advertisement
    /// with our link-layer address; after duplicate address detection (unspecified source)
    /// to all nodes, otherwise solicited, to the sender. A router solicitation goes to `ra`.
    pub(super) fn ndp(
        &mut self,
        now: Instant,
        eth: EthernetRepr,
        ip: &Ipv6Repr,
        message: &NdpRepr<'_>,
    ) -> Outcome {
        if let Err(e) = message.validate(ip.src_addr, ip.dst_addr, ip.hop_limit) {
            return Outcome::Dropped(DropReason::Ndp(e));
        }
        if let NdpRepr::RouterSolicit { options } = message {
            return self.router_solicit(now, eth, ip, options);
        }
        if let NdpRepr::NeighborAdvert {
            target_addr,
            options,
            ..
        } = message
        {
            // The answer to a forwarder's solicitation (or an unsolicited one): where the
            // guest's address is. Nothing is sent back.
            self.learn6(
                *target_addr,
                options.target_lladdr().unwrap_or(eth.src_addr),
            );
            return Outcome::Dropped(DropReason::NdpUnhandled);
        }
        if let NdpRepr::NeighborSolicit { options, .. } = message
            && !ip.src_addr.is_unspecified()
        {
            self.learn6(ip.src_addr, options.source_lladdr().unwrap_or(eth.src_addr));
        }
        let NdpRepr::NeighborSolicit {
            target_addr,
            options,
        } = *message
        else {
            return Outcome::Dropped(DropReason::NdpUnhandled);
        };
        if !self.owned6.contains(&target_addr) && !self.virtual6.contains(&target_addr) {
            return Outcome::Dropped(DropReason::NdpNotOurs);
        }
        let dad = ip.src_addr.is_unspecified();
        let (dst_ip, dst_mac) = if dad {
            (ALL_NODES, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]))
        } else {
            let mac = options.source_lladdr().unwrap_or(eth.src_addr);
            (ip.src_addr, mac)
        };
        let lladdr = [NdpOption::TargetLinkLayerAddr(self.mac)];
        let advert = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            router: true,
            solicited: !dad,
            override_entry: true,
            target_addr,
            options: NdpOptions::new(&lladdr),
        });
        let frame = self.icmpv6_frame(dst_mac, target_addr, dst_ip, ndp::HOP_LIMIT, &advert);
        self.counters.ndp_replies += 1;
        Outcome::Reply(frame)
    }

    /// Reports a guest's IPv6 address and MAC ([`Gateway::take_neighbour`]): a unicast MAC for
    /// an address of the guests' prefix (the /64 of the gateway's own address, where inbound
    /// forwards go) that is not ours, as ARP senders count only within the subnet. Link-local
    /// and foreign addresses are not reported: no forward goes to them, and a guest naming
    /// made-up addresses fills nothing beyond the neighbour table's bound.
    fn learn6(&mut self, addr: Ipv6Addr, mac: EthernetAddress) {
        let in_prefix = self
            .v6_address
            .is_some_and(|gw| gw.segments()[..4] == addr.segments()[..4]);
        if in_prefix
            && mac.is_unicast()
            && !addr.is_multicast()
            && !self.owned6.contains(&addr)
            && !self.virtual6.contains(&addr)
        {
            self.neighbour = Some((IpAddr::V6(addr), mac));
        }
    }
}
