//! The Linux boot protocol (Documentation/arch/x86/boot.rst), 32-bit entry: a bzImage's
//! protected-mode kernel is loaded at 1 MiB by `linux-loader`, and bt86 writes what a
//! boot loader's 16-bit setup would have left — the "zero page" (`boot_params`) with the
//! image's setup header, the e820 memory map, the command line and the initrd — and
//! starts the kernel at its 32-bit entry with ESI pointing at the zero page, flat
//! segments __BOOT_CS (0x10) and __BOOT_DS (0x18), paging and interrupts off.
//!
//! Placement follows QEMU's `-kernel` loader where it matters to the guest: the kernel
//! at 1 MiB (a relocatable kernel's decompressor moves itself where it wants), the initrd
//! at the top of RAM below `initrd_addr_max`, the command line below 640 KiB.

use std::io::Cursor;

use bt86_shadow_mmu::GuestRam;
use linux_loader::loader::{BzImage, KernelLoader, bootparam};
use vm_memory::{ByteValued, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use super::{LoadError, pc_memory_map};

/// Where the protected-mode kernel goes (and where its 32-bit entry is).
pub const KERNEL_ADDR: u64 = 0x10_0000;
/// The zero page.
const BOOT_PARAMS_ADDR: u64 = 0x7000;
/// The kernel command line (room up to the EBDA below 640 KiB).
pub const CMDLINE_ADDR: u64 = 0x2_0000;
const CMDLINE_ROOM: u64 = 0x9_0000 - CMDLINE_ADDR;
/// `type_of_loader`: 0xFF, a boot loader without an assigned ID.
const LOADER_ID: u8 = 0xFF;
/// The setup header's magic, "HdrS".
const HDRS: u32 = 0x5372_6448;
/// Offset of the setup header in the image (and in the zero page).
const SETUP_HEADER_OFFSET: usize = 0x1F1;
/// Oldest protocol bt86 boots: 2.02 (the command line pointer).
const MIN_VERSION: u16 = 0x0202;
/// The setup header must reach past `cmd_line_ptr` (0x228..0x22C, protocol 2.02).
const MIN_HEADER_END: usize = 0x22C;
/// loadflags: the protected-mode code loads at 1 MiB (a bzImage).
const LOADED_HIGH: u8 = 1;
/// The command line without `--append`: the serial port is the console.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0";

/// A loaded Linux kernel: where to start it and what to pass it in ESI.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// The 32-bit entry point.
    pub entry: u32,
    /// Physical address of the zero page.
    pub boot_params: u32,
}

/// True if `image` carries a Linux boot-protocol setup header.
pub fn is_bzimage(image: &[u8]) -> bool {
    image.len() >= 0x206 && image[0x202..0x206] == HDRS.to_le_bytes()
}

/// The image's setup header, as far as the image has one.
fn setup_header(path: &str, image: &[u8]) -> Result<bootparam::setup_header, LoadError> {
    let bad = |why: String| LoadError::Malformed(path.into(), why);
    if !is_bzimage(image) {
        return Err(bad("no Linux setup header (\"HdrS\" at offset 0x202)".into()));
    }
    // The header runs from 0x1F1 to the end of the jump at 0x200 (0x202 + its offset).
    let end = (0x202 + image[0x201] as usize).min(SETUP_HEADER_OFFSET + std::mem::size_of::<bootparam::setup_header>());
    if image.len() < end {
        return Err(bad("the file ends inside its setup header".into()));
    }
    if end < MIN_HEADER_END {
        return Err(bad(format!(
            "the setup header ends at {end:#x} (the jump at 0x200), before {MIN_HEADER_END:#x}: too short for boot protocol 2.02"
        )));
    }
    let mut hdr = bootparam::setup_header::default();
    hdr.as_mut_slice()[..end - SETUP_HEADER_OFFSET].copy_from_slice(&image[SETUP_HEADER_OFFSET..end]);
    let version = hdr.version;
    if version < MIN_VERSION {
        return Err(bad(format!("boot protocol {}.{:02} is older than 2.02", version >> 8, version & 0xFF)));
    }
    if hdr.loadflags & LOADED_HIGH == 0 {
        return Err(bad("a zImage (loaded below 1 MiB); bt86 boots bzImages".into()));
    }
    let setup_len = setup_len(&hdr);
    if setup_len >= image.len() as u64 {
        return Err(bad(format!(
            "setup_sects {} means {setup_len} bytes of setup code, but the file has only {} bytes (no protected-mode kernel after it)",
            hdr.setup_sects,
            image.len()
        )));
    }
    Ok(hdr)
}

/// The real-mode part of the file: the boot sector and `setup_sects` sectors (0 means 4).
fn setup_len(hdr: &bootparam::setup_header) -> u64 {
    let sects = if hdr.setup_sects == 0 { 4 } else { hdr.setup_sects as u64 };
    (sects + 1) * 512
}

/// Checks that `image` is a bzImage bt86 can boot (for early, clear errors).
pub fn validate(path: &str, image: &[u8]) -> Result<(), LoadError> {
    setup_header(path, image).map(|_| ())
}

/// Guest RAM seen through `vm-memory`, for `linux-loader`.
fn guest_memory(ram: &mut GuestRam) -> Result<GuestMemoryMmap, String> {
    let slice = ram.as_mut_slice();
    // SAFETY: `slice` is guest RAM's shared mapping, readable and writable, which lives
    // as long as `ram`; the region is not owned (it is never unmapped through it) and is
    // dropped before this function's caller lets go of the `&mut GuestRam`.
    let region = unsafe { MmapRegion::build_raw(slice.as_mut_ptr(), slice.len(), libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED) }
        .map_err(|e| e.to_string())?;
    let region = GuestRegionMmap::new(region, GuestAddress(0)).ok_or("guest RAM does not fit the address space")?;
    GuestMemoryMmap::from_regions(vec![region]).map_err(|e| e.to_string())
}

/// Loads the bzImage `image` (read from `path`), `initrd` and the command line into
/// `ram` and writes the zero page.
pub fn load(path: &str, image: &[u8], initrd: Option<&[u8]>, cmdline: &str, ram: &mut GuestRam) -> Result<Loaded, LoadError> {
    let hdr = setup_header(path, image)?;
    let ram_size = ram.size();
    let too_big = |why: String| LoadError::TooBig(path.into(), why);

    // The kernel, and the room its decompressor needs above 1 MiB.
    let kernel_len = image.len() as u64 - setup_len(&hdr);
    let init_size = if hdr.version >= 0x020A { hdr.init_size as u64 } else { kernel_len * 4 };
    let kernel_end = KERNEL_ADDR + kernel_len.max(init_size);
    if kernel_end > 1 << 32 {
        return Err(LoadError::Malformed(path.into(), format!("init_size {init_size:#x} reaches beyond 4 GiB from {KERNEL_ADDR:#x}")));
    }
    if kernel_end > ram_size {
        return Err(too_big(format!("it needs {:#x}..{kernel_end:#x} but guest RAM is {} MiB", KERNEL_ADDR, ram_size >> 20)));
    }
    let loaded = {
        let mem = guest_memory(ram).map_err(|e| LoadError::Malformed(path.into(), e))?;
        // No high-memory limit: the kernel goes at 1 MiB whatever its code32_start says,
        // as under QEMU (and code32_start is rewritten below).
        BzImage::load(&mem, Some(GuestAddress(KERNEL_ADDR)), &mut Cursor::new(image), None)
            .map_err(|e| LoadError::Malformed(path.into(), e.to_string()))?
    };

    let mut params = bootparam::boot_params { hdr, ..Default::default() };
    params.hdr.type_of_loader = LOADER_ID;
    params.hdr.code32_start = KERNEL_ADDR as u32;
    // Fields the boot loader writes: whatever the file holds there must not reach the
    // kernel as pointers (no initrd unless one is given, no setup_data list).
    params.hdr.ramdisk_image = 0;
    params.hdr.ramdisk_size = 0;
    params.hdr.setup_data = 0;

    // The command line: refused, not cut, when the kernel says it is too long.
    let max_cmdline = if hdr.version >= 0x0206 { hdr.cmdline_size as u64 } else { 255 };
    if cmdline.len() as u64 > max_cmdline.min(CMDLINE_ROOM - 1) {
        return Err(LoadError::Malformed(
            path.into(),
            format!("the command line is {} bytes; this kernel takes at most {}", cmdline.len(), max_cmdline.min(CMDLINE_ROOM - 1)),
        ));
    }
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    ram.write(CMDLINE_ADDR, &line);
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;

    if let Some(initrd) = initrd {
        // At the top of RAM below initrd_addr_max, page aligned, above the kernel.
        let max = if hdr.version >= 0x0203 { hdr.initrd_addr_max as u64 } else { 0x37FF_FFFF };
        let top = ram_size.min(max + 1);
        let len = initrd.len() as u64;
        let addr = top
            .checked_sub(len)
            .map(|a| a & !0xFFF)
            .filter(|&a| a >= kernel_end)
            .ok_or_else(|| too_big(format!("the {} KiB initrd and the kernel do not fit below {top:#x} together", len >> 10)))?;
        ram.write(addr, initrd);
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = len as u32;
    }

    let map = pc_memory_map(ram_size);
    for (entry, &(addr, size, kind)) in params.e820_table.iter_mut().zip(map.iter()) {
        *entry = bootparam::boot_e820_entry { addr, size, r#type: kind };
    }
    params.e820_entries = map.len() as u8;
    ram.write(BOOT_PARAMS_ADDR, params.as_slice());
    log::info!(
        "Linux kernel {path}: boot protocol {}.{:02}, {} KiB at {:#x}, entry {:#x}",
        hdr.version >> 8,
        hdr.version & 0xFF,
        kernel_len >> 10,
        KERNEL_ADDR,
        loaded.kernel_load.0
    );
    Ok(Loaded { entry: loaded.kernel_load.0 as u32, boot_params: BOOT_PARAMS_ADDR as u32 })
}

/// Tells the kernel at `boot_params` about the text screen in its zero page's
/// `screen_info`, as the real-mode setup code fills it from the VGA BIOS in mode 3 (QEMU's
/// `-kernel` runs that code): VGA, 80x25, 16-line characters, the cursor on row 2. With it
/// Linux's vgacon draws on the screen (`console=tty0`); without it (bt86's default, like
/// QEMU without a VGA) Linux has no text console.
pub fn announce_text_screen(ram: &mut GuestRam, boot_params: u32) {
    let mut info = [0u8; 18];
    info[1] = 2; // orig_y: the row below SeaBIOS's two lines
    info[6] = 3; // orig_video_mode
    info[7] = 80; // orig_video_cols
    info[10] = 3; // orig_video_ega_bx: colour, 256 KiB (not 0x10: an EGA/VGA)
    info[14] = 25; // orig_video_lines
    info[15] = 1; // orig_video_isVGA
    info[16] = 16; // orig_video_points
    ram.write(u64::from(boot_params), &info);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: `setup_sects` sectors of setup with the header, then `body`.
    pub(crate) fn bzimage(version: u16, body: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img[0x1F1] = 4; // setup_sects
        img[0x201] = 0x6A; // jump offset: the header runs to 0x26C
        img[0x202..0x206].copy_from_slice(&HDRS.to_le_bytes());
        img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        img[0x211] = LOADED_HIGH;
        img[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
        img[0x22C..0x230].copy_from_slice(&0x37FF_FFFFu32.to_le_bytes()); // initrd_addr_max
        img[0x238..0x23C].copy_from_slice(&2048u32.to_le_bytes()); // cmdline_size
        img.extend_from_slice(body);
        img
    }

    fn ram(mib: u64) -> GuestRam {
        GuestRam::new(mib << 20).unwrap()
    }

    #[test]
    fn loads_the_kernel_and_writes_the_zero_page() {
        let img = bzimage(0x020F, &[0x90, 0x90, 0xF4]);
        let mut r = ram(32);
        let l = load("k", &img, Some(b"initrd!"), "console=ttyS0 quiet", &mut r).unwrap();
        assert_eq!(l.entry, 0x10_0000);
        let mut k = [0u8; 3];
        r.read(KERNEL_ADDR, &mut k);
        assert_eq!(k, [0x90, 0x90, 0xF4]);
        let zp = l.boot_params as u64;
        let cmd = r.read_u32(zp + 0x228) as u64;
        let mut line = [0u8; 20];
        r.read(cmd, &mut line);
        assert_eq!(&line, b"console=ttyS0 quiet\0");
        let (rd, rd_len) = (r.read_u32(zp + 0x218) as u64, r.read_u32(zp + 0x21C));
        assert_eq!(rd_len, 7);
        assert_eq!(rd % 4096, 0);
        assert!(rd + 7 <= 32 << 20);
        let mut got = [0u8; 7];
        r.read(rd, &mut got);
        assert_eq!(&got, b"initrd!");
        let mut b = [0u8; 1];
        r.read(zp + 0x210, &mut b);
        assert_eq!(b[0], LOADER_ID, "type_of_loader");
        r.read(zp + 0x1E8, &mut b);
        assert_eq!(b[0] as usize, pc_memory_map(32 << 20).len(), "e820 entries");
        // The first e820 entry: 0..0x9FC00 usable.
        assert_eq!(r.read_u32(zp + 0x2D0 + 8), 0x9_FC00);
        assert_eq!(r.read_u32(zp + 0x2D0 + 16), 1);
    }

    #[test]
    fn refuses_what_it_cannot_boot() {
        let mut r = ram(4);
        let err = |img: &[u8], cmd: &str, r: &mut GuestRam| load("k", img, None, cmd, r).unwrap_err().to_string();
        assert!(err(&bzimage(0x0201, &[0; 16]), "", &mut r).contains("older than 2.02"));
        let mut zimage = bzimage(0x020F, &[0; 16]);
        zimage[0x211] = 0;
        assert!(err(&zimage, "", &mut r).contains("zImage"));
        assert!(err(&bzimage(0x020F, &[0; 16]), &"x".repeat(3000), &mut r).contains("at most 2048"));
        assert!(err(&bzimage(0x020F, &[0; 16])[..0x230], "", &mut r).contains("ends inside its setup header"));
        let big = bzimage(0x020F, &vec![0; 4 << 20]);
        assert!(err(&big, "", &mut r).contains("does not fit"));
        let e = load("k", &bzimage(0x020F, &[0; 16]), Some(&vec![0; 3 << 20]), "", &mut r).unwrap_err().to_string();
        assert!(e.contains("initrd"), "{e}");
    }

    #[test]
    fn recognizes_bzimages() {
        assert!(is_bzimage(&bzimage(0x020F, &[])));
        assert!(!is_bzimage(b"\x7fELF"));
        assert!(!is_bzimage(&[0; 0x300]));
    }
}
