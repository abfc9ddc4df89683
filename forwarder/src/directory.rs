//! Which worker owns a flow, for the rare packet that arrives at another worker.
//!
//! A flow belongs to the worker that created it — the one whose link queue its first packet
//! arrived on — for its whole life. With a multi-queue TAP the kernel keeps a flow's packets
//! on the queue its replies are written to, so nearly every packet arrives where its flow
//! lives and the worker finds it in its own table, without looking here. Only a packet its
//! worker does not know (a new flow, a flow whose queue the kernel changed, a stray) asks the
//! directory, which says whether another worker owns it.
//!
//! The directory is written when a flow is created or removed and read on a local miss; it is
//! never touched for a packet of a flow its worker owns. It is sharded so that workers creating
//! flows at once rarely meet on one lock, and it is bounded by the flow tables it mirrors
//! (every entry is one flow of one table, removed with it). With one worker there is nothing
//! to look up and no directory is made.

use std::collections::HashMap;
use std::hash::BuildHasher;

use parking_lot::Mutex;
use stack::ingress::FlowKey;

/// Shards of the directory; a power of two.
const SHARDS: usize = 64;

type Shard = Mutex<HashMap<FlowKey, u16, foldhash::fast::RandomState>>;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Directory {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
}

/// A flow another worker owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken(pub usize);

impl Directory {
    pub(crate) fn new() -> Directory {
        Directory {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &FlowKey) -> &Shard {
        let i = (self.hasher.hash_one(key) as usize) & (SHARDS - 1);
        // `SHARDS` entries exist and `i` is masked below it.
        &self.shards[i]
    }

    /// Records that `worker` owns `key`, unless another worker does.
    pub(crate) fn claim(&self, key: FlowKey, worker: usize) -> Result<(), Taken> {
        let mut shard = self.shard(&key).lock();
        match shard.get(&key) {
            Some(&owner) if usize::from(owner) != worker => Err(Taken(usize::from(owner))),
            _ => {
                shard.insert(key, worker as u16);
                Ok(())
            }
        }
    }

    /// The worker that owns `key`, if any.
    pub(crate) fn owner(&self, key: &FlowKey) -> Option<usize> {
        self.shard(key).lock().get(key).map(|&w| usize::from(w))
    }

    /// Forgets `key` if `worker` owns it.
    pub(crate) fn release(&self, key: &FlowKey, worker: usize) {
        let mut shard = self.shard(key).lock();
        if shard.get(key).is_some_and(|&w| usize::from(w) == worker) {
            shard.remove(key);
        }
    }

    /// Gives back what a burst of flows left in the shards (see [`crate::shrink_map`]);
    /// returns whether any shrank.
    pub(crate) fn shrink(&self) -> bool {
        let mut shrank = false;
        for shard in &self.shards {
            shrank |= crate::shrink_map(&mut shard.lock());
        }
        shrank
    }

    /// Entries, for tests and stats.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Entries the shards have room for, for tests.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.lock().capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stack::wire::IpProtocol;
    use std::net::SocketAddr;

    fn key(port: u16) -> FlowKey {
        FlowKey {
            protocol: IpProtocol::Tcp,
            guest: SocketAddr::from(([192, 168, 127, 2], port)),
            remote: SocketAddr::from(([192, 168, 127, 254], 80)),
        }
    }

    #[test]
    fn a_flow_has_one_owner_until_released() {
        let d = Directory::new();
        assert_eq!(d.owner(&key(1)), None);
        assert_eq!(d.claim(key(1), 3), Ok(()));
        assert_eq!(d.claim(key(1), 3), Ok(()), "claiming again is harmless");
        assert_eq!(d.claim(key(1), 1), Err(Taken(3)));
        assert_eq!(d.owner(&key(1)), Some(3));
        d.release(&key(1), 1);
        assert_eq!(d.owner(&key(1)), Some(3), "only the owner releases");
        d.release(&key(1), 3);
        assert_eq!(d.owner(&key(1)), None);
        assert_eq!(d.claim(key(1), 1), Ok(()));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_burst_of_flows_gives_its_room_back() {
        let d = Directory::new();
        for port in 0..20_000 {
            assert_eq!(d.claim(key(port), 0), Ok(()));
        }
        let grown = d.capacity();
        assert!(grown >= 20_000);
        assert!(!d.shrink(), "a full directory keeps its room");
        for port in 0..20_000 {
            d.release(&key(port), 0);
        }
        assert!(d.shrink());
        assert_eq!(d.len(), 0);
        assert!(d.capacity() < grown / 8, "{} of {grown} left", d.capacity());
    }
}
