//! Writes cpio archives in the "newc" format (magic `070701`), the format Linux unpacks
//! an initramfs from, so that building one needs no `cpio` program. An archive is built
//! in memory from directories, character device nodes, regular files and symbolic links,
//! then ends with the `TRAILER!!!` entry. Every entry gets its own inode number, owner
//! root and modification time 0, so the same inputs give the same bytes.
//!
//! The build script compiles this file too (`#[path]`), to pack the test workload's
//! initramfs at build time: it uses nothing but `std`.

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// A newc archive being built. Paths are relative to the root (`"bin/busybox"`, no
/// leading slash), parents before their contents, as the kernel creates them in order.
pub struct Archive {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self { bytes: Vec::new(), next_inode: 1 }
    }

    /// A directory with permission bits `perm` (e.g. 0o755).
    pub fn dir(&mut self, path: &str, perm: u32) -> &mut Self {
        self.entry(path, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[])
    }

    /// A character device node `major:minor` (e.g. /dev/console is 5:1).
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(path, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[])
    }

    /// A regular file holding `data`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(path, S_IFREG | (perm & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link to `target` (the link's data is the target's path).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// The finished archive: the entries, then the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_inode = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.bytes
    }

    /// One header (13 fields of 8 hex digits after the magic), the NUL-terminated name and
    /// the data, each padded to 4 bytes as the format requires.
    fn entry(&mut self, path: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) -> &mut Self {
        let name = path.trim_start_matches('/');
        let inode = self.next_inode;
        if inode != 0 {
            self.next_inode += 1;
        }
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).expect("a cpio entry holds less than 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short name"),
            0, // check (unused by newc)
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }

    fn pad(&mut self) {
        let padded = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(padded, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev major, rdev minor, data) of every entry, read back.
    fn parse(mut b: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let total = b.len();
        loop {
            assert_eq!((total - b.len()) % 4, 0, "entries start 4-byte aligned");
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| u32::from_str_radix(std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
            let (mode, size, major, minor, namesize) = (field(1), field(6) as usize, field(9), field(10), field(11) as usize);
            let name = String::from_utf8(b[110..110 + namesize - 1].to_vec()).unwrap();
            assert_eq!(b[110 + namesize - 1], 0, "names end with NUL");
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = b[data_at..data_at + size].to_vec();
            b = &b[(data_at + size).next_multiple_of(4)..];
            if name == "TRAILER!!!" {
                assert!(b.is_empty(), "nothing after the trailer");
                return out;
            }
            out.push((name, mode, major, minor, data));
        }
    }

    #[test]
    fn round_trip() {
        let mut a = Archive::new();
        a.dir("dev", 0o755).char_dev("/dev/console", 0o600, 5, 1).file("init", 0o755, b"#!/bin/sh\n").symlink("bin/sh", "busybox");
        let entries = parse(&a.finish());
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0], ("dev".into(), 0o040755, 0, 0, vec![]));
        assert_eq!(entries[1], ("dev/console".into(), 0o020600, 5, 1, vec![]));
        assert_eq!(entries[2], ("init".into(), 0o100755, 0, 0, b"#!/bin/sh\n".to_vec()));
        assert_eq!(entries[3], ("bin/sh".into(), 0o120777, 0, 0, b"busybox".to_vec()));
    }

    #[test]
    fn empty_archive_is_only_the_trailer() {
        assert!(parse(&Archive::new().finish()).is_empty());
    }
}
