//! Loading a guest kernel into guest RAM. Only Multiboot (v1) kernels for now; the Linux
//! boot protocol comes with the next guests.

pub mod multiboot;

use std::fmt;

/// Why a kernel image could not be loaded. Every variant is a problem with the user's
/// input, reported in one line with exit status 2.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Io(String, std::io::Error),
    /// Not an ELF file.
    NotElf(String),
    /// An ELF file, but not a 32-bit x86 executable.
    WrongArch(String, String),
    /// No Multiboot header in the first 8 KiB.
    NotMultiboot(String),
    /// A malformed header or image.
    Malformed(String, String),
    /// The image does not fit into guest RAM.
    TooBig(String, String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "cannot read kernel image {p}: {e}"),
            LoadError::NotElf(p) => write!(f, "{p} is not an ELF file (bt86 boots 32-bit Multiboot ELF kernels)"),
            LoadError::WrongArch(p, what) => {
                write!(f, "{p} is {what}, not a 32-bit x86 (i386) ELF executable")
            }
            LoadError::NotMultiboot(p) => write!(f, "{p} has no Multiboot header in its first 8 KiB (magic 0x1BADB002)"),
            LoadError::Malformed(p, why) => write!(f, "{p}: malformed kernel image: {why}"),
            LoadError::TooBig(p, why) => write!(f, "{p} does not fit in guest memory: {why} (try a larger --mem)"),
        }
    }
}

impl std::error::Error for LoadError {}
