//! A capture file with a size limit (`--pcap-max-size`): when the next record would take the
//! file past the limit, the file is moved to `FILE.1` (replacing an older one) and capture
//! goes on in a fresh `FILE` that starts with the same global header. So the capture never
//! takes more than twice the limit on disk, each file is a whole pcap file, and no record is
//! cut in two.
//!
//! [`RotatingFile`] is the `Write` a [`super::pcap::PcapWriter`] writes to; it follows the
//! pcap stream it is given (the 24-byte global header, then per record a 16-byte header whose
//! captured length says how many bytes of frame follow) to know where records begin. It
//! counts on each record header and each frame coming in one `write` call, as
//! [`super::pcap::PcapWriter`] writes them (with `write_all` of the whole slice).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The pcap global header's length.
const GLOBAL_HEADER: usize = 24;
/// A record header's length.
const RECORD_HEADER: usize = 16;

/// Where in the pcap stream the next write falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    GlobalHeader,
    RecordHeader,
    /// The frame of the record whose header came last: this many bytes.
    Frame(usize),
}

/// A capture file moved aside at a size limit. See the module docs.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    file: BufWriter<File>,
    written: u64,
    header: Vec<u8>,
    next: Next,
    rotations: u64,
}

impl RotatingFile {
    /// Creates (truncating) `path`; `max_bytes` is the most one file holds.
    pub fn create(path: &Path, max_bytes: u64) -> io::Result<RotatingFile> {
        Ok(RotatingFile {
            path: path.to_owned(),
            max_bytes,
            file: BufWriter::with_capacity(64 * 1024, File::create(path)?),
            written: 0,
            header: Vec::new(),
            next: Next::GlobalHeader,
            rotations: 0,
        })
    }

    /// The name the full file is moved to.
    pub fn rotated_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".1");
        PathBuf::from(name)
    }

    /// How many times the file was moved aside.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let old = RotatingFile::rotated_path(&self.path);
        std::fs::rename(&self.path, &old)?;
        self.file = BufWriter::with_capacity(64 * 1024, File::create(&self.path)?);
        self.file.write_all(&self.header)?;
        self.written = self.header.len() as u64;
        self.rotations += 1;
        tracing::info!(
            path = %self.path.display(),
            moved_to = %old.display(),
            max_bytes = self.max_bytes,
            "pcap file reached its size limit: moved aside, capturing anew"
        );
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.next {
            Next::GlobalHeader => {
                self.header = buf.to_vec();
                if buf.len() == GLOBAL_HEADER {
                    self.next = Next::RecordHeader;
                }
            }
            Next::RecordHeader => {
                let incl = buf
                    .get(8..12)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, |b| u32::from_le_bytes(b) as usize);
                let record = (RECORD_HEADER + incl) as u64;
                // A record that does not fit an empty file either still goes in whole.
                if self.written + record > self.max_bytes && self.written > self.header.len() as u64
                {
                    self.rotate()?;
                }
                self.next = match incl {
                    0 => Next::RecordHeader,
                    n => Next::Frame(n),
                };
            }
            Next::Frame(_) => self.next = Next::RecordHeader,
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::PcapWriter;
    use std::time::Duration;

    /// The records of a pcap file: (captured length, original length).
    fn records(bytes: &[u8]) -> Vec<(u32, u32)> {
        assert!(bytes.len() >= GLOBAL_HEADER, "no global header");
        assert_eq!(bytes[..4], 0xa1b2_c3d4u32.to_le_bytes());
        let mut at = GLOBAL_HEADER;
        let mut out = Vec::new();
        while at < bytes.len() {
            let h = &bytes[at..at + RECORD_HEADER];
            let incl = u32::from_le_bytes(h[8..12].try_into().unwrap());
            let orig = u32::from_le_bytes(h[12..16].try_into().unwrap());
            at += RECORD_HEADER + incl as usize;
            assert!(at <= bytes.len(), "a record cut short");
            out.push((incl, orig));
        }
        out
    }

    #[test]
    fn moves_aside_at_the_limit_and_keeps_whole_files() {
        let dir = std::env::temp_dir().join(format!("hs-pcap-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cap.pcap");
        let file = RotatingFile::create(&path, 1000).unwrap();
        let mut w = PcapWriter::with_snaplen(file, 100).unwrap();
        for i in 0..40u32 {
            let frame = vec![i as u8; 60 + (i as usize % 3) * 50];
            w.write_frame(Duration::from_secs(u64::from(i)), &frame)
                .unwrap();
        }
        w.flush().unwrap();
        let file = w.into_inner();
        assert!(file.rotations() >= 2, "{}", file.rotations());
        let now = std::fs::read(&path).unwrap();
        let old = std::fs::read(RotatingFile::rotated_path(&path)).unwrap();
        for f in [&now, &old] {
            assert!(f.len() <= 1000, "{}", f.len());
            let r = records(f);
            assert!(!r.is_empty());
            assert!(r.iter().all(|&(incl, orig)| incl <= 100 && orig >= incl));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
