//! The worker's side of TAP offloads: the virtio-net header of a frame read from a queue
//! that has one, checked before anything else looks at the frame ([`rx_header`]: a header
//! that does not parse or does not fit its frame drops the frame, counted under
//! [`stack::ingress::DropReason::VirtioNet`], and nothing else happens), and frames with offloads finished in
//! software where they must reach a link without them ([`Out::finish_for`]: a guest's
//! super-segment for another guest's link, one of ours whose guest moved, a flood;
//! [`Out::finish_here`]: a guest's UDP super-datagram for the gateway's services). Every
//! finishing is counted ([`WorkerEvent::Finished`], [`WorkerEvent::FinishedFrame`]); one that
//! fails drops the frame, counted under its reason.

use bytes::Bytes;
use forwarder::WorkerEvent;
use stack::offload::finish;
use stack::wire::{VirtioNetError, VirtioNetRepr};

use super::{Out, OutFrame};
use crate::mac_table::PortId;
use crate::tap::VNET_HEADER_LEN;

/// The header of a frame `read` bytes long (header included) from a queue with virtio-net
/// headers, checked against the frame.
pub(super) fn rx_header(
    header: &[u8; VNET_HEADER_LEN],
    read: usize,
    frame: &[u8],
) -> Result<VirtioNetRepr, VirtioNetError> {
    if read < VNET_HEADER_LEN {
        return Err(VirtioNetError::Truncated);
    }
    VirtioNetRepr::parse_for(header, frame)
}

impl Out {
    /// Finishes `frame` as `header` says and sends each resulting frame to `port` (a link
    /// without offloads). True if every one was sent.
    pub(super) fn finish_for(
        &self,
        port: PortId,
        frame: &OutFrame<'_>,
        header: &VirtioNetRepr,
    ) -> bool {
        let Ok(mut scratch) = self.finish_scratch.try_borrow_mut() else {
            // Finishing never transmits anything that needs finishing again.
            return false;
        };
        let mut sent = true;
        let result = finish(frame.as_slice(), header, &mut scratch, &mut |piece| {
            self.counters.count(WorkerEvent::FinishedFrame, 1);
            sent &= self.transmit(port, OutFrame::Built(piece), &VirtioNetRepr::PLAIN);
        });
        self.counted(result).is_some() && sent
    }

    /// Finishes `frame` as `header` says into frames of their own (a guest's UDP
    /// super-datagram, one datagram each, for the gateway's services).
    pub(super) fn finish_here(&self, frame: &[u8], header: &VirtioNetRepr) -> Vec<Bytes> {
        let mut pieces = Vec::new();
        let mut scratch = self.finish_scratch.borrow_mut();
        let result = finish(frame, header, &mut scratch, &mut |piece| {
            self.counters.count(WorkerEvent::FinishedFrame, 1);
            pieces.push(Bytes::copy_from_slice(piece));
        });
        match self.counted(result) {
            Some(_) => pieces,
            None => Vec::new(),
        }
    }

    fn counted<T>(&self, result: Result<T, stack::offload::FinishError>) -> Option<T> {
        match result {
            Ok(v) => {
                self.counters.count(WorkerEvent::Finished, 1);
                Some(v)
            }
            Err(e) => {
                self.counters.count_drop(e.drop_reason());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_read_or_a_bad_header_is_refused() {
        let frame = [0u8; 60];
        assert_eq!(
            rx_header(&[0; VNET_HEADER_LEN], 5, &frame),
            Err(VirtioNetError::Truncated)
        );
        assert_eq!(
            rx_header(&[0; VNET_HEADER_LEN], VNET_HEADER_LEN + 60, &frame),
            Ok(VirtioNetRepr::PLAIN)
        );
        let mut unknown = [0u8; VNET_HEADER_LEN];
        unknown[1] = 9;
        assert_eq!(
            rx_header(&unknown, 72, &frame),
            Err(VirtioNetError::UnknownGsoType)
        );
        // NEEDS_CSUM pointing past the frame.
        let mut past = [0u8; VNET_HEADER_LEN];
        past[0] = 1;
        past[6] = 60;
        assert_eq!(
            rx_header(&past, 72, &frame),
            Err(VirtioNetError::BadChecksumOffset)
        );
    }
}
