//! The states of RFC 9293 §3.3.2, with the names the RFC gives them.

use core::fmt;

/// A connection state (RFC 9293 §3.3.2, Figure 5).
///
/// `Listen` here is one connection's LISTEN: the guest's SYN has arrived and waits for the
/// embedder to [`accept`](super::Connection::accept) or
/// [`refuse`](super::Connection::refuse) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
}

impl State {
    /// The states where our SYN has been sent but not acknowledged.
    pub(crate) const fn syn_unacked(self) -> bool {
        matches!(self, State::SynSent | State::SynReceived)
    }

    /// The synchronized states (RFC 9293 §3.5.2): both ISNs known and our SYN acknowledged.
    pub const fn is_synchronized(self) -> bool {
        matches!(
            self,
            State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
                | State::TimeWait
        )
    }

    /// States in which the peer may still send data (its FIN not yet received).
    pub(crate) const fn receives_data(self) -> bool {
        matches!(
            self,
            State::SynReceived | State::Established | State::FinWait1 | State::FinWait2
        )
    }

    /// States in which we may still send data or our FIN.
    pub(crate) const fn sends_data(self) -> bool {
        matches!(
            self,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
            State::Closed => "CLOSED",
        })
    }
}
