//! The server's counters: messages by type, and every dropped request by reason.

use crate::message;

/// Why a request got no reply. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    // Malformed: the message could not be parsed (see [`message::Error`]).
    /// Shorter than the BOOTP header and magic cookie.
    Truncated,
    /// No DHCP magic cookie.
    BadMagic,
    /// `op` neither BOOTREQUEST nor BOOTREPLY.
    BadOp,
    /// Not an Ethernet hardware address.
    NotEthernet,
    /// An option runs past the end of its field.
    OptionOverrun,
    /// An options field without End.
    MissingEnd,
    /// An option with a length that does not fit its value.
    BadOptionLength,
    /// An undecodable domain search list.
    BadDomainSearch,
    /// No message type: plain BOOTP, which we do not serve.
    MissingMessageType,

    // Well-formed, but not something we answer.
    /// A BOOTREPLY (another server's message).
    NotRequest,
    /// A message type clients do not send (OFFER, ACK, NAK, or an unknown type).
    UnexpectedMessageType,
    /// `chaddr` is zero or a group address.
    BadClientHardwareAddress,
    /// A client identifier longer than 255 bytes.
    ClientIdTooLong,
    /// A REQUEST or DECLINE without the requested address where one is required.
    MissingRequestedIp,
    /// A DECLINE or RELEASE without a server identifier.
    MissingServerId,
    /// A RELEASE or INFORM without `ciaddr`.
    MissingClientAddress,
    /// The server identifier is not ours: the client is talking to another server.
    ForeignServer,
    /// A relay (`giaddr`) or an INFORM from outside our subnet.
    WrongSubnet,
    /// A RELEASE or DECLINE of an address the client does not hold.
    NotOwner,
    /// A DISCOVER with no address left to offer.
    PoolExhausted,
    /// An INIT-REBOOT REQUEST from a client we have no record of (RFC 2131 §4.3.2: the
    /// server "MUST remain silent").
    UnknownClient,
    /// A DISCOVER from a MAC that already holds
    /// [`Config::max_offers_per_mac`](crate::Config::max_offers_per_mac) outstanding offers.
    MacOffersFull,
    /// The reply could not be encoded (a bug).
    EmitFailed,
    /// The reply's required options alone exceed the client's maximum message size or the
    /// link MTU.
    ReplyTooLarge,
}

impl DropReason {
    /// Every reason, in declaration order.
    pub const ALL: [DropReason; 24] = [
        DropReason::Truncated,
        DropReason::BadMagic,
        DropReason::BadOp,
        DropReason::NotEthernet,
        DropReason::OptionOverrun,
        DropReason::MissingEnd,
        DropReason::BadOptionLength,
        DropReason::BadDomainSearch,
        DropReason::MissingMessageType,
        DropReason::NotRequest,
        DropReason::UnexpectedMessageType,
        DropReason::BadClientHardwareAddress,
        DropReason::ClientIdTooLong,
        DropReason::MissingRequestedIp,
        DropReason::MissingServerId,
        DropReason::MissingClientAddress,
        DropReason::ForeignServer,
        DropReason::WrongSubnet,
        DropReason::NotOwner,
        DropReason::PoolExhausted,
        DropReason::UnknownClient,
        DropReason::MacOffersFull,
        DropReason::EmitFailed,
        DropReason::ReplyTooLarge,
    ];

    /// True for the reasons that mean the message itself was broken.
    pub fn is_malformed(self) -> bool {
        self <= DropReason::MissingMessageType
    }
}

impl From<message::Error> for DropReason {
    fn from(error: message::Error) -> DropReason {
        use message::Error as E;
        match error {
            E::Truncated => DropReason::Truncated,
            E::BadMagic => DropReason::BadMagic,
            E::BadOp(_) => DropReason::BadOp,
            E::NotEthernet { .. } => DropReason::NotEthernet,
            E::OptionOverrun { .. } => DropReason::OptionOverrun,
            E::MissingEnd => DropReason::MissingEnd,
            E::BadOptionLength { .. } => DropReason::BadOptionLength,
            E::BadDomainSearch => DropReason::BadDomainSearch,
            E::MissingMessageType => DropReason::MissingMessageType,
        }
    }
}

/// Dropped requests, one counter per [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    pub(crate) fn count(&mut self, reason: DropReason) {
        if let Some(n) = self.0.get_mut(reason as usize) {
            *n = n.saturating_add(1);
        }
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Drops of malformed messages.
    pub fn malformed(&self) -> u64 {
        self.iter()
            .filter(|(r, _)| r.is_malformed())
            .map(|(_, n)| n)
            .sum()
    }

    /// Each reason with its count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

/// A snapshot of the server's counters and table sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Payloads given to [`Server::handle`](crate::Server::handle).
    pub received: u64,
    pub discovers: u64,
    pub requests: u64,
    pub declines: u64,
    pub releases: u64,
    pub informs: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    /// Offers that ran out before the client's REQUEST.
    pub offers_expired: u64,
    /// Leases that ran out without being renewed.
    pub leases_expired: u64,
    /// Leases ended by RELEASE.
    pub leases_released: u64,
    /// Addresses taken out of use by DECLINE.
    pub addresses_declined: u64,
    /// Outstanding offers withdrawn, oldest first, to make room under
    /// [`Config::max_offers`](crate::Config::max_offers) for a new client's.
    pub offers_reclaimed: u64,
    pub dropped: Drops,
    /// Bound leases now (gauge).
    pub leases: usize,
    /// Offers outstanding now (gauge).
    pub offers_outstanding: usize,
    /// Free addresses in the dynamic pool now (gauge).
    pub pool_free: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_counters() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut d = Drops::default();
        d.count(DropReason::EmitFailed);
        d.count(DropReason::Truncated);
        d.count(DropReason::Truncated);
        assert_eq!(d.get(DropReason::Truncated), 2);
        assert_eq!(d.total(), 3);
        assert_eq!(d.malformed(), 2);
        assert_eq!(d.iter().count(), DropReason::ALL.len());
    }
}
