//! A byte ring that grows on demand up to a limit, for the send and receive queues.
//!
//! Storage starts empty and doubles when a write needs room, up to `limit` bytes; a bulk
//! connection grows to the full window and keeps that memory while it is busy (a ring that
//! empties between two segments is not freed and regrown each time). [`Ring::release_idle`],
//! called from a periodic sweep, hands the memory back once the ring is empty and nothing
//! touched it since the sweep before, so an idle connection holds no buffer memory at all.
//!
//! Besides appending at the end, the receive side writes out-of-order data into the free
//! space *past* the end ([`Ring::write_at`]) and later makes it readable with
//! [`Ring::commit`]: reassembly needs no second copy. Readers see the data as at most two
//! slices ([`Ring::slices`], [`Ring::slices_at`]), so the embedder can `writev` it.
//!
//! No method panics: every index is reduced modulo the storage length, and every length is
//! clamped to what is there.

/// The smallest storage allocated, so that tiny writes do not reallocate over and over.
const MIN_STORAGE: usize = 4096;

/// A bounded, lazily grown ring of bytes.
#[derive(Clone, Default)]
pub(crate) struct Ring {
    storage: Vec<u8>,
    /// Index of the first readable byte in `storage` (always < `storage.len()`, or 0).
    read: usize,
    /// Readable bytes.
    len: usize,
    /// The most bytes the ring may ever hold.
    limit: usize,
    /// Data moved in or out since the last [`Ring::release_idle`].
    touched: bool,
}

impl core::fmt::Debug for Ring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ring")
            .field("len", &self.len)
            .field("limit", &self.limit)
            .field("allocated", &self.storage.len())
            .finish_non_exhaustive()
    }
}

impl Ring {
    pub(crate) fn new(limit: usize) -> Ring {
        Ring {
            storage: Vec::new(),
            read: 0,
            len: 0,
            limit,
            touched: false,
        }
    }

    /// Readable bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The most bytes the ring will hold.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes that may still be appended before the limit.
    pub(crate) fn free(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }

    /// Bytes of storage currently allocated.
    pub(crate) fn allocated(&self) -> usize {
        self.storage.len()
    }

    /// Makes the storage at least `need` bytes long (within the limit), keeping the data
    /// and any bytes already written past the end at the same offsets from `read`.
    fn reserve(&mut self, need: usize) {
        self.touched = true;
        let need = need.min(self.limit);
        if self.storage.len() >= need {
            return;
        }
        let mut size = self.storage.len().max(MIN_STORAGE);
        while size < need {
            size = size.saturating_mul(2);
        }
        let size = size.min(self.limit).max(need);
        // Linearise: copy the whole old ring, starting at `read`, to the front of the new
        // storage so that offsets from `read` are preserved (bytes past `len` included).
        let mut grown = vec![0u8; size];
        let old = self.storage.len();
        if old > 0 {
            let (tail, head) = self.storage.split_at(self.read.min(old));
            let first = head.len();
            if let Some(dst) = grown.get_mut(..first) {
                dst.copy_from_slice(head);
            }
            if let Some(dst) = grown.get_mut(first..first + tail.len()) {
                dst.copy_from_slice(tail);
            }
        }
        self.storage = grown;
        self.read = 0;
    }

    /// Copies `data` into the free space starting `offset` bytes past the end, without
    /// making it readable. Returns how many bytes were written (fewer when the limit is
    /// reached).
    pub(crate) fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let start = self.len.saturating_add(offset);
        let room = self.limit.saturating_sub(start);
        let data = data.get(..data.len().min(room)).unwrap_or(&[]);
        if data.is_empty() {
            return 0;
        }
        self.reserve(start + data.len());
        let size = self.storage.len();
        if size == 0 {
            return 0;
        }
        let at = (self.read + start) % size;
        let first = data.len().min(size - at);
        let (a, b) = data.split_at(first);
        if let Some(dst) = self.storage.get_mut(at..at + a.len()) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = self.storage.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        data.len()
    }

    /// Makes `n` bytes written past the end readable (clamped to the limit).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len = self
            .len
            .saturating_add(n)
            .min(self.limit)
            .min(self.storage.len());
    }

    /// Appends as much of `data` as fits; returns the count.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.commit(n);
        n
    }

    /// Drops up to `n` bytes from the front; returns the count.
    pub(crate) fn consume(&mut self, n: usize) -> usize {
        self.touched = true;
        let n = n.min(self.len);
        self.len -= n;
        // Bytes written past the end keep their place, so `read` moves even when empty.
        if !self.storage.is_empty() {
            self.read = (self.read + n) % self.storage.len();
        }
        n
    }

    /// Up to `len` readable bytes starting `offset` bytes from the front, as two slices
    /// (the second empty unless the range wraps).
    pub(crate) fn slices_at(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let size = self.storage.len();
        let len = len.min(self.len.saturating_sub(offset));
        if size == 0 || len == 0 {
            return (&[], &[]);
        }
        let at = (self.read + offset) % size;
        let first = len.min(size - at);
        let a = self.storage.get(at..at + first).unwrap_or(&[]);
        let b = self.storage.get(..len - first).unwrap_or(&[]);
        (a, b)
    }

    /// All readable bytes as two slices.
    pub(crate) fn slices(&self) -> (&[u8], &[u8]) {
        self.slices_at(0, self.len)
    }

    /// Copies readable bytes into `out` and consumes them; returns the count.
    pub(crate) fn pop(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.slices();
        let n1 = a.len().min(out.len());
        let n2 = b.len().min(out.len() - n1);
        if let (Some(dst), Some(src)) = (out.get_mut(..n1), a.get(..n1)) {
            dst.copy_from_slice(src);
        }
        if let (Some(dst), Some(src)) = (out.get_mut(n1..n1 + n2), b.get(..n2)) {
            dst.copy_from_slice(src);
        }
        self.consume(n1 + n2)
    }

    /// Frees the storage when nothing is held (no readable data; the caller guarantees no
    /// out-of-order bytes sit past the end).
    pub(crate) fn release_if_empty(&mut self) {
        if self.len == 0 {
            self.storage = Vec::new();
            self.read = 0;
        }
    }

    /// A sweep: frees the storage if nothing is held and no data moved since the last sweep
    /// (the caller guarantees no out-of-order bytes sit past the end); returns the bytes
    /// freed. Either way the next sweep starts counting afresh.
    pub(crate) fn release_idle(&mut self) -> usize {
        let freed = if !self.touched && self.len == 0 {
            let n = self.storage.len();
            self.release_if_empty();
            n
        } else {
            0
        };
        self.touched = false;
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(ring: &Ring) -> Vec<u8> {
        let (a, b) = ring.slices();
        [a, b].concat()
    }

    #[test]
    fn grows_lazily_and_wraps() {
        let mut ring = Ring::new(10_000);
        assert_eq!(ring.allocated(), 0);
        assert_eq!(ring.push(&[1; 3000]), 3000);
        assert_eq!(ring.allocated(), MIN_STORAGE);
        assert_eq!(ring.consume(2500), 2500);
        // Wraps inside the 4096 bytes.
        assert_eq!(ring.push(&[2; 3000]), 3000);
        assert_eq!(ring.allocated(), MIN_STORAGE);
        let (a, b) = ring.slices();
        assert!(!b.is_empty());
        assert_eq!(a.len() + b.len(), 3500);
        // Growing keeps the order.
        assert_eq!(ring.push(&[3; 4000]), 4000);
        let data = collect(&ring);
        assert_eq!(data.len(), 7500);
        assert!(data[..500].iter().all(|&x| x == 1));
        assert!(data[500..3500].iter().all(|&x| x == 2));
        assert!(data[3500..].iter().all(|&x| x == 3));
        // The limit holds.
        assert_eq!(ring.push(&[4; 5000]), 2500);
        assert_eq!(ring.free(), 0);
        assert_eq!(ring.allocated(), 10_000);
    }

    #[test]
    fn out_of_order_then_commit() {
        let mut ring = Ring::new(100);
        assert_eq!(ring.write_at(5, b"world"), 5);
        assert_eq!(ring.write_at(0, b"hello"), 5);
        ring.commit(10);
        assert_eq!(collect(&ring), b"helloworld");
        let mut out = [0u8; 4];
        assert_eq!(ring.pop(&mut out), 4);
        assert_eq!(&out, b"hell");
        assert_eq!(ring.slices_at(1, 100).0, b"world");
        // Past the limit nothing is written.
        assert_eq!(ring.write_at(200, b"x"), 0);
        ring.consume(6);
        ring.release_if_empty();
        assert_eq!(ring.allocated(), 0);
    }

    #[test]
    fn write_at_survives_growth_across_wrap() {
        let mut ring = Ring::new(1 << 16);
        ring.push(&[0; 4000]);
        ring.consume(4000);
        ring.push(&[7; 50]);
        // Out-of-order bytes that wrap, then growth.
        ring.write_at(100, &[9; 100]);
        ring.write_at(5000, &[8; 10]);
        ring.write_at(50, &[5; 50]);
        ring.commit(200);
        let data = collect(&ring);
        assert_eq!(&data[..50], &[7; 50]);
        assert_eq!(&data[100..150], &[5; 50]);
        assert_eq!(&data[150..200], &[9; 50]);
        ring.consume(200);
        ring.commit(5000);
        assert_eq!(ring.slices_at(4850, 10).0, &[8; 10]);
    }
}
