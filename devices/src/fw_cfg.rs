//! QEMU's firmware configuration interface (`fw_cfg`), its I/O-port form on the PC:
//! a 16-bit write to the selector port 0x510 picks an item by key, byte reads of the
//! data port 0x511 return its bytes one after another (zeros past its end, and for keys
//! that hold nothing). No DMA interface: the ID item says so (bit 0 only), and guests
//! that check it read through the port.
//!
//! The items are what QEMU's `pc` machine offers a guest kernel: the signature "QEMU",
//! the ID, RAM size, CPU count and maximum, the file directory with `etc/e820` (QEMU's
//! own memory map: RAM only, the BIOS adds the holes), and for a Linux kernel its
//! command line (`CMDLINE_ADDR/SIZE/DATA`, as QEMU sets them for `-append`; QEMU leaves
//! them empty for a Multiboot kernel, and so does bt86). Integers are little-endian
//! except the directory's, which QEMU writes big-endian.
//!
//! As in QEMU, an access that is not a byte read or a byte/word write of the two ports
//! does nothing (a byte write to the selector does not select; a write to the data port
//! is ignored).

use std::collections::BTreeMap;

/// The selector port; the data port follows it.
pub const FW_CFG_PORT: u16 = 0x510;
/// Ports claimed (selector, data).
pub const FW_CFG_LEN: u16 = 2;

/// "QEMU".
pub const KEY_SIGNATURE: u16 = 0x00;
/// Interface features: bit 0 traditional (port) interface, bit 1 DMA.
pub const KEY_ID: u16 = 0x01;
/// RAM size in bytes (64-bit).
pub const KEY_RAM_SIZE: u16 = 0x03;
/// Number of CPUs at boot (16-bit).
pub const KEY_NB_CPUS: u16 = 0x05;
/// Maximum number of CPUs (16-bit).
pub const KEY_MAX_CPUS: u16 = 0x0F;
/// Where the kernel command line was put (32-bit).
pub const KEY_CMDLINE_ADDR: u16 = 0x13;
/// The command line's size, its NUL included (32-bit).
pub const KEY_CMDLINE_SIZE: u16 = 0x14;
/// The command line, NUL-terminated.
pub const KEY_CMDLINE_DATA: u16 = 0x15;
/// The file directory.
pub const KEY_FILE_DIR: u16 = 0x19;
/// The first key given to a file.
pub const FIRST_FILE_KEY: u16 = 0x20;
/// The key bits that select an item (bit 14 is QEMU's write flag).
const KEY_MASK: u16 = 0xBFFF;
/// Longest file name, NUL included.
const FILE_NAME_LEN: usize = 56;

/// The fw_cfg device.
#[derive(Debug, Clone, Default)]
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    files: Vec<(String, u16)>,
    selected: u16,
    offset: usize,
}

impl FwCfg {
    /// The items QEMU's `pc` machine has for `ram_size` bytes of RAM and `cpus` CPUs.
    pub fn new(ram_size: u64, cpus: u16) -> FwCfg {
        let mut cfg = FwCfg::default();
        cfg.set(KEY_SIGNATURE, b"QEMU".to_vec());
        cfg.set(KEY_ID, 1u32.to_le_bytes().to_vec());
        cfg.set(KEY_RAM_SIZE, ram_size.to_le_bytes().to_vec());
        cfg.set(KEY_NB_CPUS, cpus.to_le_bytes().to_vec());
        cfg.set(KEY_MAX_CPUS, cpus.to_le_bytes().to_vec());
        let mut e820 = Vec::new();
        e820.extend_from_slice(&0u64.to_le_bytes());
        e820.extend_from_slice(&ram_size.to_le_bytes());
        e820.extend_from_slice(&1u32.to_le_bytes()); // E820_RAM
        cfg.add_file("etc/e820", e820);
        cfg
    }

    /// Sets item `key` (replacing what it held).
    pub fn set(&mut self, key: u16, data: Vec<u8>) {
        self.items.insert(key, data);
    }

    /// The kernel command line of a Linux kernel, put at `addr` by the loader.
    pub fn set_cmdline(&mut self, addr: u32, cmdline: &str) {
        let mut data = cmdline.as_bytes().to_vec();
        data.push(0);
        self.set(KEY_CMDLINE_ADDR, addr.to_le_bytes().to_vec());
        self.set(KEY_CMDLINE_SIZE, (data.len() as u32).to_le_bytes().to_vec());
        self.set(KEY_CMDLINE_DATA, data);
    }

    /// Adds a file under the next free key and rewrites the directory. Panics on a name
    /// that does not fit the directory's 56 bytes (file names are bt86's own).
    pub fn add_file(&mut self, name: &str, data: Vec<u8>) {
        assert!(name.len() < FILE_NAME_LEN, "fw_cfg file name {name:?} too long");
        let key = FIRST_FILE_KEY + self.files.len() as u16;
        self.files.push((name.to_string(), key));
        self.set(key, data);
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (name, key) in &self.files {
            dir.extend_from_slice(&(self.items[key].len() as u32).to_be_bytes());
            dir.extend_from_slice(&key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut field = [0u8; FILE_NAME_LEN];
            field[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&field);
        }
        self.set(KEY_FILE_DIR, dir);
    }

    /// A guest read of `size` bytes at `offset` (0: selector, 1: data): byte reads give
    /// the selected item's next byte.
    pub fn read(&mut self, _offset: u16, size: u8) -> u32 {
        if size != 1 {
            return 0;
        }
        let byte = self.items.get(&self.selected).and_then(|d| d.get(self.offset)).copied().unwrap_or(0);
        self.offset += 1;
        u32::from(byte)
    }

    /// A guest write: a 16-bit write to the selector selects an item and rewinds it.
    pub fn write(&mut self, offset: u16, size: u8, value: u32) {
        if offset == 0 && size == 2 {
            self.selected = value as u16 & KEY_MASK;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_item(cfg: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        cfg.write(0, 2, u32::from(key));
        (0..len).map(|_| cfg.read(1, 1) as u8).collect()
    }

    #[test]
    fn signature_id_ram_and_cpus() {
        let mut cfg = FwCfg::new(128 << 20, 1);
        assert_eq!(read_item(&mut cfg, KEY_SIGNATURE, 6), b"QEMU\0\0");
        assert_eq!(read_item(&mut cfg, KEY_ID, 4), [1, 0, 0, 0]);
        assert_eq!(read_item(&mut cfg, KEY_RAM_SIZE, 8), (128u64 << 20).to_le_bytes());
        assert_eq!(read_item(&mut cfg, KEY_NB_CPUS, 2), [1, 0]);
        assert_eq!(read_item(&mut cfg, KEY_MAX_CPUS, 2), [1, 0]);
        // No command line for a kernel that was not given one as Linux.
        assert_eq!(read_item(&mut cfg, KEY_CMDLINE_SIZE, 4), [0; 4]);
        // Unknown keys read as zeros.
        assert_eq!(read_item(&mut cfg, 0x7777, 2), [0, 0]);
    }

    #[test]
    fn selecting_rewinds_and_only_word_writes_select() {
        let mut cfg = FwCfg::new(64 << 20, 1);
        assert_eq!(read_item(&mut cfg, KEY_SIGNATURE, 2), b"QE");
        assert_eq!(cfg.read(1, 1), u32::from(b'M'));
        cfg.write(0, 1, u32::from(KEY_ID));
        assert_eq!(cfg.read(1, 1), u32::from(b'U'));
        assert_eq!(cfg.read(1, 2), 0, "word reads of the data port are not accesses");
        cfg.write(0, 2, u32::from(KEY_SIGNATURE));
        assert_eq!(cfg.read(1, 1), u32::from(b'Q'));
        // The write flag (bit 14) does not change which item is read.
        cfg.write(0, 2, u32::from(KEY_SIGNATURE | 0x4000));
        assert_eq!(cfg.read(1, 1), u32::from(b'Q'));
    }

    #[test]
    fn the_directory_lists_etc_e820() {
        let mut cfg = FwCfg::new(128 << 20, 1);
        let dir = read_item(&mut cfg, KEY_FILE_DIR, 4 + 64);
        assert_eq!(u32::from_be_bytes(dir[0..4].try_into().unwrap()), 1);
        let entry = &dir[4..];
        assert_eq!(u32::from_be_bytes(entry[0..4].try_into().unwrap()), 20);
        let key = u16::from_be_bytes(entry[4..6].try_into().unwrap());
        assert_eq!(&entry[8..17], b"etc/e820\0");
        let e820 = read_item(&mut cfg, key, 20);
        assert_eq!(u64::from_le_bytes(e820[0..8].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(e820[8..16].try_into().unwrap()), 128 << 20);
        assert_eq!(u32::from_le_bytes(e820[16..20].try_into().unwrap()), 1);
    }

    #[test]
    fn the_command_line_of_a_linux_kernel() {
        let mut cfg = FwCfg::new(128 << 20, 1);
        cfg.set_cmdline(0x2_0000, "console=ttyS0");
        assert_eq!(read_item(&mut cfg, KEY_CMDLINE_ADDR, 4), 0x2_0000u32.to_le_bytes());
        assert_eq!(read_item(&mut cfg, KEY_CMDLINE_SIZE, 4), 14u32.to_le_bytes());
        assert_eq!(read_item(&mut cfg, KEY_CMDLINE_DATA, 15), b"console=ttyS0\0\0");
    }
}
