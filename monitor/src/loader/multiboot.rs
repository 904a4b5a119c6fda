//! Multiboot (v1) kernels: finding the header, planning where the ELF segments (or the
//! a.out kludge image) go, and building the Multiboot information block the way QEMU's
//! `-kernel` loader does, so that test kernels see the same values under both.
//!
//! Every field of a kernel file is hostile input: all header arithmetic is done in u64 or
//! checked, the whole image is planned and checked (inside the file, inside RAM, no two
//! pieces overlapping, the entry point inside RAM) before a byte is written, and
//! the information block goes after the image, page aligned, as QEMU puts its command
//! lines and module list, so that it can never collide with the kernel.

use goblin::elf::header;

use super::LoadError;
use shadow::GuestRam;

use bt86_shadow_mmu as shadow;

/// Magic in the kernel's header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Magic the loader passes in EAX.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// How far into the file the header may start.
const SEARCH_LIMIT: usize = 8192;

/// Header flag: the load address fields are valid (the "a.out kludge").
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

/// Page size: the information block starts on a page boundary after the image.
const PAGE: u64 = 0x1000;

/// Layout of the information area, as offsets from its (page-aligned) start.
const MBI_LEN: usize = 22 * 4;
const MMAP_OFFSET: u64 = 0x100;
const NAME_OFFSET: u64 = 0x200;
const MODS_OFFSET: u64 = 0x210;
const CMDLINE_OFFSET: u64 = 0x220;
const BOOT_LOADER_NAME: &[u8] = b"bt86\0";

/// ELF constants (32-bit, little-endian).
const ELF32_EHDR_LEN: usize = 52;
const ELF32_PHDR_LEN: usize = 32;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const PT_LOAD: u32 = 1;
/// e_phnum meaning "more than 0xFFFF, see section 0" (never used by a kernel).
const PN_XNUM: u16 = 0xFFFF;

/// A loaded kernel: where to start it and what to pass it.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Entry point (physical).
    pub entry: u32,
    /// Physical address of the Multiboot information block (EBX).
    pub info: u32,
    /// End of the loaded image (physical).
    pub image_end: u32,
}

struct Header {
    offset: usize,
    flags: u32,
    header_addr: u32,
    load_addr: u32,
    load_end_addr: u32,
    bss_end_addr: u32,
    entry_addr: u32,
}

/// One piece of the image: `file` bytes of the file copied to `addr`, then zeros up to
/// `addr + mem_len`.
#[derive(Clone, Debug)]
struct Piece {
    file: std::ops::Range<usize>,
    addr: u64,
    mem_len: u64,
}

impl Piece {
    fn end(&self) -> u64 {
        self.addr + self.mem_len
    }
}

/// Where everything goes, checked against the file (not yet against RAM).
#[derive(Debug)]
struct Plan {
    pieces: Vec<Piece>,
    entry: u32,
}

impl Plan {
    fn end(&self) -> u64 {
        self.pieces.iter().map(Piece::end).max().unwrap_or(0)
    }
}

fn malformed(path: &str, why: impl Into<String>) -> LoadError {
    LoadError::Malformed(path.into(), why.into())
}

fn le32(image: &[u8], at: usize) -> Option<u32> {
    let bytes = image.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn le16(image: &[u8], at: usize) -> Option<u16> {
    let bytes = image.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn find_header(path: &str, image: &[u8]) -> Result<Header, LoadError> {
    let limit = image.len().min(SEARCH_LIMIT);
    let mut off = 0;
    while off + 12 <= limit {
        if le32(image, off) == Some(HEADER_MAGIC) {
            return read_header(path, image, off);
        }
        off += 4;
    }
    Err(LoadError::NotMultiboot(path.into()))
}

fn read_header(path: &str, image: &[u8], off: usize) -> Result<Header, LoadError> {
    let word = |i: usize| le32(image, off + 4 * i);
    let (magic, flags, sum) = (word(0).unwrap_or(0), word(1).unwrap_or(0), word(2).unwrap_or(0));
    if magic.wrapping_add(flags).wrapping_add(sum) != 0 {
        return Err(malformed(
            path,
            format!("the Multiboot header at offset {off:#x} has a bad checksum (magic + flags + checksum must be 0)"),
        ));
    }
    let kludge = flags & FLAG_AOUT_KLUDGE != 0;
    let field = |i: usize| word(3 + i);
    if kludge && field(4).is_none() {
        return Err(malformed(path, format!("the file ends inside the a.out kludge fields of the Multiboot header at offset {off:#x}")));
    }
    let field = |i: usize| field(i).unwrap_or(0);
    Ok(Header {
        offset: off,
        flags,
        header_addr: field(0),
        load_addr: field(1),
        load_end_addr: field(2),
        bss_end_addr: field(3),
        entry_addr: field(4),
    })
}

/// Checks that `image` is a loadable Multiboot kernel (for early, clear errors: a file
/// without a Multiboot header is described by what it is instead, when that is clearer).
pub fn validate(path: &str, image: &[u8]) -> Result<(), LoadError> {
    plan(path, image).map(|_| ())
}

/// Finds the header and plans the image.
fn plan(path: &str, image: &[u8]) -> Result<Plan, LoadError> {
    let h = match find_header(path, image) {
        Ok(h) => h,
        Err(LoadError::NotMultiboot(_)) => {
            elf_plan(path, image)?;
            return Err(LoadError::NotMultiboot(path.into()));
        }
        Err(e) => return Err(e),
    };
    if h.flags & FLAG_AOUT_KLUDGE != 0 { aout_plan(path, image, &h) } else { elf_plan(path, image) }
}

/// The a.out kludge: the header says which part of the file goes where.
fn aout_plan(path: &str, image: &[u8], h: &Header) -> Result<Plan, LoadError> {
    let bad = |why: String| Err(malformed(path, why));
    if h.load_addr > h.header_addr {
        return bad(format!("load_addr {:#x} is above header_addr {:#x} in the a.out kludge header", h.load_addr, h.header_addr));
    }
    let before_header = (h.header_addr - h.load_addr) as usize;
    let Some(file_start) = h.offset.checked_sub(before_header) else {
        return bad(format!(
            "header_addr - load_addr is {before_header:#x} but the Multiboot header is at file offset {:#x}: the image would start before the file",
            h.offset
        ));
    };
    let load_len = if h.load_end_addr == 0 {
        (image.len() - file_start) as u64
    } else if h.load_end_addr < h.load_addr {
        return bad(format!("load_end_addr {:#x} is below load_addr {:#x}", h.load_end_addr, h.load_addr));
    } else {
        (h.load_end_addr - h.load_addr) as u64
    };
    if file_start as u64 + load_len > image.len() as u64 {
        return bad(format!(
            "load_end_addr {:#x} lies {:#x} bytes beyond the end of the file",
            h.load_end_addr,
            file_start as u64 + load_len - image.len() as u64
        ));
    }
    let load_end = h.load_addr as u64 + load_len;
    let bss_end = match h.bss_end_addr {
        0 => load_end,
        b if (b as u64) < load_end => return bad(format!("bss_end_addr {b:#x} is below the end of the loaded image {load_end:#x}")),
        b => b as u64,
    };
    if bss_end == h.load_addr as u64 {
        return bad("the a.out kludge header loads nothing (load_end_addr = load_addr)".into());
    }
    let piece = Piece { file: file_start..file_start + load_len as usize, addr: h.load_addr as u64, mem_len: bss_end - h.load_addr as u64 };
    Ok(Plan { pieces: vec![piece], entry: h.entry_addr })
}

/// The ELF header fields a loader needs, checked.
struct Elf32 {
    entry: u32,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

fn elf_header(path: &str, image: &[u8]) -> Result<Elf32, LoadError> {
    if image.len() < 4 || &image[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf(path.into()));
    }
    let ident = |i: usize| image.get(i).copied();
    match ident(4) {
        Some(ELFCLASS32) => {}
        Some(ELFCLASS64) => return Err(LoadError::WrongArch(path.into(), "a 64-bit ELF file".into())),
        Some(c) => return Err(malformed(path, format!("invalid ELF class {c} (byte 4 must be 1 for a 32-bit file)"))),
        None => return Err(truncated_elf(path, image.len())),
    }
    match ident(5) {
        Some(ELFDATA2LSB) => {}
        Some(2) => return Err(LoadError::WrongArch(path.into(), "a big-endian ELF file".into())),
        Some(d) => return Err(malformed(path, format!("invalid ELF data encoding {d} (byte 5 must be 1, little-endian)"))),
        None => return Err(truncated_elf(path, image.len())),
    }
    if image.len() < ELF32_EHDR_LEN {
        return Err(truncated_elf(path, image.len()));
    }
    let half = |at: usize| le16(image, at).unwrap_or(0);
    let word = |at: usize| le32(image, at).unwrap_or(0);
    let machine = half(18);
    if machine != header::EM_386 {
        return Err(LoadError::WrongArch(path.into(), format!("an ELF file for machine {}", header::machine_to_str(machine))));
    }
    let kind = half(16);
    if kind != header::ET_EXEC {
        return Err(LoadError::WrongArch(path.into(), format!("an ELF {} file", header::et_to_str(kind))));
    }
    let elf = Elf32 { entry: word(24), phoff: word(28) as usize, phentsize: half(42) as usize, phnum: half(44) as usize };
    check_program_header_table(path, image, &elf)?;
    Ok(elf)
}

fn truncated_elf(path: &str, len: usize) -> LoadError {
    malformed(path, format!("the file is {len} bytes long and ends inside its {ELF32_EHDR_LEN}-byte ELF header"))
}

fn check_program_header_table(path: &str, image: &[u8], elf: &Elf32) -> Result<(), LoadError> {
    if elf.phnum == 0 {
        return Err(malformed(path, "the ELF file has no program headers, so nothing to load"));
    }
    if elf.phnum == PN_XNUM as usize {
        return Err(malformed(path, "the ELF file has 65535 or more program headers (PN_XNUM)"));
    }
    if elf.phentsize < ELF32_PHDR_LEN {
        return Err(malformed(path, format!("e_phentsize is {}, smaller than a program header ({ELF32_PHDR_LEN})", elf.phentsize)));
    }
    let table_end = elf.phoff as u64 + elf.phentsize as u64 * elf.phnum as u64;
    if table_end > image.len() as u64 {
        return Err(malformed(
            path,
            format!("the program header table ({:#x}..{table_end:#x}) runs past the end of the file ({:#x} bytes)", elf.phoff, image.len()),
        ));
    }
    Ok(())
}

/// The ELF image: its PT_LOAD segments at their physical addresses.
fn elf_plan(path: &str, image: &[u8]) -> Result<Plan, LoadError> {
    let elf = elf_header(path, image)?;
    let mut pieces: Vec<Piece> = Vec::new();
    let mut entry = elf.entry;
    for i in 0..elf.phnum {
        let at = elf.phoff + i * elf.phentsize;
        let word = |o: usize| le32(image, at + o).unwrap_or(0);
        if word(0) != PT_LOAD {
            continue;
        }
        let (offset, vaddr, paddr, filesz, memsz) = (word(4), word(8), word(12), word(16), word(20));
        let seg = |why: String| malformed(path, format!("program header {i}: {why}"));
        if offset as u64 + filesz as u64 > image.len() as u64 {
            return Err(seg(format!(
                "its {filesz:#x} bytes at file offset {offset:#x} run past the end of the file ({:#x} bytes)",
                image.len()
            )));
        }
        if filesz > memsz {
            return Err(seg(format!("p_filesz {filesz:#x} is larger than p_memsz {memsz:#x}")));
        }
        if memsz == 0 {
            continue;
        }
        if paddr as u64 + memsz as u64 > 1 << 32 {
            return Err(seg(format!("{memsz:#x} bytes at {paddr:#x} wrap around the end of the 4 GiB address space")));
        }
        let piece = Piece { file: offset as usize..offset as usize + filesz as usize, addr: paddr as u64, mem_len: memsz as u64 };
        // A kernel linked at virtual addresses: translate the entry as QEMU does.
        if vaddr != paddr && elf.entry >= vaddr && (elf.entry - vaddr) < memsz {
            entry = elf.entry - vaddr + paddr;
        }
        pieces.push(piece);
    }
    if pieces.is_empty() {
        return Err(malformed(path, "the ELF file has no loadable segments (PT_LOAD with a size)"));
    }
    check_overlaps(path, &mut pieces)?;
    Ok(Plan { pieces, entry })
}

/// Refuses segments that overlap (sorted by address first: a file may hold 65534 of
/// them, too many to compare pairwise).
fn check_overlaps(path: &str, pieces: &mut [Piece]) -> Result<(), LoadError> {
    pieces.sort_by_key(|p| p.addr);
    match pieces.windows(2).find(|w| w[1].addr < w[0].end()) {
        Some(w) => Err(malformed(
            path,
            format!("two segments overlap: {:#x}..{:#x} and {:#x}..{:#x}", w[0].addr, w[0].end(), w[1].addr, w[1].end()),
        )),
        None => Ok(()),
    }
}

/// An entry point outside the image runs whatever RAM holds there (zeros, or the boot
/// information): QEMU boots such a kernel, so bt86 only warns; beyond RAM it cannot run.
fn check_entry(path: &str, plan: &Plan, ram_size: u64) -> Result<(), LoadError> {
    let e = plan.entry as u64;
    if e >= ram_size {
        return Err(LoadError::TooBig(path.into(), format!("its entry point {e:#x} lies beyond the end of guest RAM ({ram_size:#x})")));
    }
    if !plan.pieces.iter().any(|p| p.addr <= e && e < p.end()) {
        log::warn!("{path}: the entry point {e:#x} lies outside the loaded image");
    }
    Ok(())
}

/// Checks that the image fits in RAM.
fn check_fits(path: &str, plan: &Plan, ram_size: u64) -> Result<(), LoadError> {
    match plan.pieces.iter().find(|p| p.end() > ram_size) {
        Some(p) => Err(LoadError::TooBig(
            path.into(),
            format!("it occupies {:#x}..{:#x} but guest RAM ends at {ram_size:#x} ({} MiB)", p.addr, p.end(), ram_size >> 20),
        )),
        None => Ok(()),
    }
}

/// Loads the kernel `image` (read from `path`) into `ram` and writes the Multiboot
/// information with `cmdline`. Nothing is written when the image is refused.
pub fn load(path: &str, image: &[u8], cmdline: &str, ram: &mut GuestRam) -> Result<Loaded, LoadError> {
    let plan = plan(path, image)?;
    check_fits(path, &plan, ram.size())?;
    check_entry(path, &plan, ram.size())?;
    let image_end = plan.end();
    let info = InfoBlock::new(path, cmdline, image_end);
    info.check_fits(path, ram.size())?;
    let mem = ram.as_mut_slice();
    for p in &plan.pieces {
        let (data, dst) = (image.get(p.file.clone()), mem.get_mut(p.addr as usize..p.end() as usize));
        let (Some(data), Some(dst)) = (data, dst) else {
            return Err(LoadError::Malformed(path.into(), format!("a segment at {:#x} lies outside the file or RAM", p.addr)));
        };
        let (head, bss) = dst.split_at_mut(data.len());
        head.copy_from_slice(data);
        bss.fill(0);
    }
    info.write(ram);
    Ok(Loaded { entry: plan.entry, info: info.base as u32, image_end: image_end as u32 })
}

/// The Multiboot information block: flags, mem_lower/mem_upper, boot device, command
/// line (QEMU passes "<kernel path> <append>"), an empty module list, the memory map and
/// the boot loader name, all in one area that starts at the first page after the image.
struct InfoBlock {
    base: u64,
    cmdline: Vec<u8>,
}

impl InfoBlock {
    fn new(path: &str, cmdline: &str, image_end: u64) -> InfoBlock {
        let mut line = format!("{path} {cmdline}").into_bytes();
        line.push(0);
        InfoBlock { base: image_end.div_ceil(PAGE) * PAGE, cmdline: line }
    }

    fn end(&self) -> u64 {
        self.base + CMDLINE_OFFSET + self.cmdline.len() as u64
    }

    /// Refuses a command line that does not fit in RAM after the image (it is never cut).
    fn check_fits(&self, path: &str, ram_size: u64) -> Result<(), LoadError> {
        if self.end() <= ram_size {
            return Ok(());
        }
        Err(LoadError::TooBig(
            path.into(),
            format!(
                "the boot information and the {}-byte command line go at {:#x}..{:#x}, after the image, but guest RAM ends at {ram_size:#x}",
                self.cmdline.len() - 1,
                self.base,
                self.end()
            ),
        ))
    }

    fn write(&self, ram: &mut GuestRam) {
        let base = self.base;
        let ram_size = ram.size();
        let mut mmap = Vec::new();
        for (addr, len, ty) in super::pc_memory_map(ram_size) {
            mmap.extend_from_slice(&20u32.to_le_bytes());
            mmap.extend_from_slice(&addr.to_le_bytes());
            mmap.extend_from_slice(&len.to_le_bytes());
            mmap.extend_from_slice(&ty.to_le_bytes());
        }
        ram.write(base + MMAP_OFFSET, &mmap);
        ram.write(base + NAME_OFFSET, BOOT_LOADER_NAME);
        ram.write(base + CMDLINE_OFFSET, &self.cmdline);

        let mut mbi = [0u32; MBI_LEN / 4];
        mbi[0] = 0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x200; // mem, boot device, cmdline, mods, mmap, loader name
        mbi[1] = 639; // mem_lower in KiB (below the EBDA)
        mbi[2] = (ram_size.saturating_sub(0x10_0000) >> 10) as u32; // mem_upper in KiB
        mbi[3] = 0x8000_FFFF; // boot_device: none
        mbi[4] = (base + CMDLINE_OFFSET) as u32;
        mbi[5] = 0; // mods_count
        mbi[6] = (base + MODS_OFFSET) as u32; // mods_addr (empty list)
        mbi[11] = mmap.len() as u32;
        mbi[12] = (base + MMAP_OFFSET) as u32;
        mbi[16] = (base + NAME_OFFSET) as u32; // boot_loader_name
        let bytes: Vec<u8> = mbi.iter().flat_map(|w| w.to_le_bytes()).collect();
        ram.write(base, &bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An a.out kludge kernel of `len` bytes at `addr` with a bss up to `bss_end`.
    fn aout(addr: u32, len: usize, bss_end: u32) -> Vec<u8> {
        let flags = FLAG_AOUT_KLUDGE;
        let words = [HEADER_MAGIC, flags, 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags), addr, addr, 0, bss_end, addr + 32];
        let mut f: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        f.resize(len, 0xF4);
        f
    }

    #[test]
    fn the_information_block_follows_the_image() {
        let mut ram = GuestRam::new(4 << 20).unwrap();
        let l = load("k", &aout(0x8000, 0x100, 0xA123), "hello", &mut ram).unwrap();
        assert_eq!((l.entry, l.image_end, l.info), (0x8020, 0xA123, 0xB000));
        let info = l.info as u64;
        let mut line = [0u8; 8];
        ram.read(ram.read_u32(info + 16) as u64, &mut line);
        assert_eq!(&line, b"k hello\0");
        let mut name = [0u8; 5];
        ram.read(ram.read_u32(info + 64) as u64, &mut name);
        assert_eq!(&name, BOOT_LOADER_NAME);
        assert_eq!(ram.read_u32(info + 44), 5 * 24, "mmap_length");
        assert_eq!(ram.read_u32(ram.read_u32(info + 48) as u64 + 12), 0x9_FC00, "first mmap entry's length");
        // The bss is zeroed.
        let mut bss = [0xFFu8; 16];
        ram.read(0xA110, &mut bss);
        assert_eq!(bss, [0; 16]);
    }

    #[test]
    fn a_command_line_is_refused_only_when_it_does_not_fit() {
        let mut ram = GuestRam::new(2 << 20).unwrap();
        let kernel = aout(0x10_0000, 0x100, 0x1F_E000);
        let room = 0x20_0000 - 0x1F_E000 - CMDLINE_OFFSET as usize - "k ".len() - 1;
        assert!(load("k", &kernel, &"x".repeat(room), &mut ram).is_ok());
        let e = load("k", &kernel, &"x".repeat(room + 1), &mut ram).unwrap_err().to_string();
        assert!(e.contains("command line"), "{e}");
    }
}
