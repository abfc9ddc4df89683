//! A writer for the cpio "newc" format (the SVR4 portable format without checksums), the one
//! format the kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
//! buffer-format.rst). The archive is left uncompressed: the kernel accepts that, and under
//! software emulation it saves the guest a decompression.
//!
//! Entries are written in the order given; a directory must come before what it holds.

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

#[derive(Debug, Default)]
pub(crate) struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    pub(crate) fn new() -> Archive {
        Archive {
            bytes: Vec::new(),
            next_ino: 1,
        }
    }

    pub(crate) fn dir(&mut self, path: &str) {
        self.entry(path, S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, S_IFREG | mode, 1, (0, 0), data);
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    pub(crate) fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | mode, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.header(0, 0, 1, (0, 0), "TRAILER!!!", 0);
        self.bytes.extend_from_slice(b"TRAILER!!!\0");
        self.pad();
        self.bytes
    }

    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        assert!(!path.starts_with('/'), "archive paths are relative: {path}");
        let ino = self.next_ino;
        self.next_ino += 1;
        let size = u32::try_from(data.len()).expect("cpio newc entries are below 4 GiB");
        self.header(ino, mode, nlink, rdev, path, size);
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), name: &str, size: u32) {
        let namesize = u32::try_from(name.len() + 1).expect("short name");
        // magic, then ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, check: eight hex digits each.
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
        }
    }

    /// Pads to a multiple of four bytes (header plus name, and data, are each so aligned).
    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

#[test]
fn newc_layout() {
    let mut archive = Archive::new();
    archive.dir("bin");
    archive.file("bin/x", 0o755, b"hello");
    let bytes = archive.finish();
    // First header: ino 1, a directory, name "bin" (namesize 4); 110 + 4 bytes is 114, padded
    // to 116.
    assert_eq!(&bytes[..6], b"070701");
    assert_eq!(&bytes[6..14], b"00000001");
    assert_eq!(&bytes[14..22], b"000041ED");
    assert_eq!(&bytes[94..102], b"00000004");
    assert_eq!(&bytes[110..116], b"bin\0\0\0");
    // Second: a regular file of five bytes, its data padded to eight.
    let second = &bytes[116..];
    assert_eq!(&second[14..22], b"000081ED");
    assert_eq!(&second[54..62], b"00000005");
    assert_eq!(&second[110..116], b"bin/x\0");
    assert_eq!(&second[116..124], b"hello\0\0\0");
    let trailer = &second[124..];
    assert_eq!(&trailer[110..121], b"TRAILER!!!\0");
    assert!(bytes.len().is_multiple_of(4));
}
