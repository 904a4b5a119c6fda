//! Loading a guest kernel into guest RAM: Multiboot (v1) ELF kernels ([`multiboot`]) and
//! Linux bzImages through the 32-bit boot protocol ([`linux`]), told apart by their
//! headers.

#[cfg(test)]
mod fuzz_tests;
pub mod linux;
pub mod multiboot;

use std::fmt;

/// Reads the file `path` (a `what`: "kernel image", "initrd") whole, refusing anything
/// but a regular file of at most `max` bytes — a device, a FIFO or a file larger than
/// guest RAM would be read forever or could never be loaded. The file is opened
/// non-blocking, so that opening a FIFO without a writer does not wait for one.
pub fn read_image(path: &str, what: &str, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {what} {path}: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read {what} {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{what} {path} is not a regular file ({})", file_kind(&meta)));
    }
    if meta.len() > max {
        return Err(format!("{what} {path} is {} MiB, larger than guest RAM ({} MiB; try a larger --mem)", meta.len() >> 20, max >> 20));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read stops at the limit too.
    file.take(max + 1).read_to_end(&mut data).map_err(|e| format!("cannot read {what} {path}: {e}"))?;
    if data.len() as u64 > max {
        return Err(format!("{what} {path} is larger than guest RAM ({} MiB)", max >> 20));
    }
    Ok(data)
}

/// What a file that is not a regular file is, for messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// Why a kernel image could not be loaded. Every variant is a problem with the user's
/// input, reported in one line with exit status 2.
#[derive(Debug)]
pub enum LoadError {
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
            LoadError::NotElf(p) => {
                write!(f, "{p} is neither a Linux bzImage nor an ELF file (bt86 boots bzImages and 32-bit Multiboot ELF kernels)")
            }
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

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// The physical memory map a PC BIOS (SeaBIOS, under QEMU's `pc` machine) reports for
/// `ram_size` bytes of RAM, as (address, length, e820 type): conventional memory below the
/// EBDA, the EBDA, the BIOS ROM, RAM from 1 MiB, the BIOS flash below 4 GiB.
pub fn pc_memory_map(ram_size: u64) -> [(u64, u64, u32); 5] {
    [
        (0, 0x9_FC00, E820_RAM),
        (0x9_FC00, 0x400, E820_RESERVED),
        (0xF_0000, 0x1_0000, E820_RESERVED),
        (0x10_0000, ram_size.saturating_sub(0x10_0000), E820_RAM),
        (0xFFFC_0000, 0x4_0000, E820_RESERVED),
    ]
}
