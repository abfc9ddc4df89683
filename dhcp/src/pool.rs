//! The free addresses of a dynamic pool (IPv4 or IPv6), handed out least recently freed first.
//!
//! Never-used addresses come first, in address order; a freed address goes to the back. A
//! client coming back after its lease ended therefore usually finds its old address still free
//! (RFC 2131 §4.3.1 asks the server to prefer it). Every operation is O(log n); the pool's size
//! is bounded by [`MAX_POOL_SIZE`](crate::config::MAX_POOL_SIZE).

use core::hash::Hash;
use core::net::Ipv4Addr;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub(crate) struct Pool<A = Ipv4Addr> {
    /// Free addresses by the order they are handed out in.
    order: BTreeMap<u64, A>,
    /// Each free address's key in `order`.
    index: HashMap<A, u64>,
    next: u64,
}

impl<A> Default for Pool<A> {
    fn default() -> Pool<A> {
        Pool {
            order: BTreeMap::new(),
            index: HashMap::new(),
            next: 0,
        }
    }
}

impl<A: Copy + Eq + Hash> Pool<A> {
    /// A pool holding `addrs`, handed out in the order given.
    pub(crate) fn new(addrs: impl IntoIterator<Item = A>) -> Pool<A> {
        let mut pool = Pool::default();
        for addr in addrs {
            pool.put(addr);
        }
        pool
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn contains(&self, addr: A) -> bool {
        self.index.contains_key(&addr)
    }

    /// The address [`Pool::take`] would prefer next.
    pub(crate) fn first(&self) -> Option<A> {
        self.order.first_key_value().map(|(_, &a)| a)
    }

    /// Removes `addr`; false if it was not free.
    pub(crate) fn take(&mut self, addr: A) -> bool {
        match self.index.remove(&addr) {
            Some(key) => {
                self.order.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Adds `addr` at the back; an address already free keeps its place.
    pub(crate) fn put(&mut self, addr: A) {
        if self.index.contains_key(&addr) {
            return;
        }
        let key = self.next;
        self.next = self.next.wrapping_add(1);
        self.order.insert(key, addr);
        self.index.insert(addr, key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    #[test]
    fn least_recently_freed_first() {
        let mut pool = Pool::new([a(3), a(4), a(5)]);
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.first(), Some(a(3)));
        assert!(pool.take(a(3)));
        assert!(!pool.take(a(3)));
        assert!(pool.take(a(5)));
        pool.put(a(3));
        assert_eq!(pool.first(), Some(a(4)));
        assert!(pool.take(a(4)));
        assert_eq!(pool.first(), Some(a(3)));
        pool.put(a(5));
        pool.put(a(3));
        assert!(pool.take(a(3)));
        assert_eq!(pool.first(), Some(a(5)));
        assert!(pool.contains(a(5)) && !pool.contains(a(3)));
        assert!(pool.take(a(5)));
        assert_eq!(pool.first(), None);
        assert_eq!(pool.len(), 0);
    }
}
