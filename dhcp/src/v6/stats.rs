//! The DHCPv6 server's counters: messages by type, replies, and every drop by reason.

/// Why a message got no reply. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The header or an option did not parse (see [`super::message::Error`]).
    Malformed,
    /// A message type servers do not take from clients (Advertise, Reply, relay messages…).
    NotClientMessage,
    /// No Client Identifier where RFC 8415 §16 requires one.
    MissingClientId,
    /// A Server Identifier in a message that must not have one (Solicit, Confirm, Rebind),
    /// or none in one that must (Request, Renew, Release, Decline).
    ServerIdRule,
    /// A Server Identifier that is not ours: the client talks to another server.
    ForeignServer,
    /// An Information-request carrying an IA option (RFC 8415 §16.12).
    IaInInformationRequest,
    /// A Confirm without addresses to confirm (RFC 8415 §18.3.3).
    NothingToConfirm,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::Malformed,
        DropReason::NotClientMessage,
        DropReason::MissingClientId,
        DropReason::ServerIdRule,
        DropReason::ForeignServer,
        DropReason::IaInInformationRequest,
        DropReason::NothingToConfirm,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotClientMessage => "not_client_message",
            DropReason::MissingClientId => "missing_client_id",
            DropReason::ServerIdRule => "server_id_rule",
            DropReason::ForeignServer => "foreign_server",
            DropReason::IaInInformationRequest => "ia_in_information_request",
            DropReason::NothingToConfirm => "nothing_to_confirm",
        }
    }

    fn index(&self) -> usize {
        DropReason::ALL.iter().position(|r| r == self).unwrap_or(0)
    }
}

/// Drops by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops([u64; DropReason::ALL.len()]);

impl Drops {
    pub fn count(&mut self, reason: DropReason) {
        if let Some(n) = self.0.get_mut(reason.index()) {
            *n += 1;
        }
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().copied().zip(self.0.iter().copied())
    }
}

/// The server's counters; all but the gauges only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub solicits: u64,
    pub requests: u64,
    pub confirms: u64,
    pub renews: u64,
    pub rebinds: u64,
    pub releases: u64,
    pub declines: u64,
    pub information_requests: u64,
    pub advertises: u64,
    pub replies: u64,
    /// IAs answered with NoAddrsAvail.
    pub no_addrs_avail: u64,
    /// IAs answered with NoBinding (Renew or Rebind of an address we do not know for them).
    pub no_binding: u64,
    pub leases_expired: u64,
    pub dropped: Drops,
    /// Bound addresses now, and free pool addresses.
    pub leases: usize,
    pub pool_free: usize,
}
