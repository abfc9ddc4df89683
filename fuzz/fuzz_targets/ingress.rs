//! The gateway's ingress path: `stack::ingress::parse` on any frame, then the flow summary.
//! Nothing may panic; a drop reason's index is in range; a flow's payload range lies inside
//! the frame and its key's addresses are the packet's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::ingress::{self, DropReason};
use stack::wire::EthernetAddress;

const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);

fuzz_target!(|frame: &[u8]| {
    match ingress::parse(frame, GATEWAY_MAC) {
        Err(reason) => {
            assert!(reason.index() < DropReason::COUNT);
            assert_eq!(
                DropReason::ALL.get(reason.index()).map(|r| r.name()),
                Some(reason.name())
            );
        }
        Ok(parsed) => {
            if let Some(flow) = parsed.flow() {
                assert!(flow.payload.start <= flow.payload.end);
                assert!(flow.payload.end <= frame.len());
                assert_eq!(flow.key.guest.is_ipv4(), flow.key.remote.is_ipv4());
                let _ = flow.key.worker(0x5eed, 7);
            }
        }
    }
});
