//! Multiboot (v1) kernels: finding the header, loading the ELF segments (or the a.out
//! kludge image), and building the Multiboot information block the way QEMU's
//! `-kernel` loader does, so that test kernels see the same values under both.

use goblin::elf::{Elf, header, program_header};

use super::LoadError;
use shadow::GuestRam;

use bt86_shadow_mmu as shadow;

/// Magic in the kernel's header.
pub const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// Magic the loader passes in EAX.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;

/// Where the loader puts its information block (below the kernel, above the BIOS data
/// area), as (address, maximum size).
const INFO_AREA: (u32, usize) = (0x9000, 0x7000);

/// Header flag: the load address fields are valid (the "a.out kludge").
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;

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

fn find_header(path: &str, image: &[u8]) -> Result<Header, LoadError> {
    let limit = image.len().min(8192);
    let word = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().unwrap());
    let mut off = 0;
    while off + 12 <= limit {
        if word(off) == HEADER_MAGIC {
            let flags = word(off + 4);
            if word(off).wrapping_add(flags).wrapping_add(word(off + 8)) != 0 {
                return Err(LoadError::Malformed(path.into(), format!("Multiboot header at offset {off:#x} has a bad checksum")));
            }
            let field = |i: usize| {
                if off + 12 + 4 * i + 4 <= image.len() { word(off + 12 + 4 * i) } else { 0 }
            };
            return Ok(Header {
                offset: off,
                flags,
                header_addr: field(0),
                load_addr: field(1),
                load_end_addr: field(2),
                bss_end_addr: field(3),
                entry_addr: field(4),
            });
        }
        off += 4;
    }
    Err(LoadError::NotMultiboot(path.into()))
}

/// Checks that `image` is a loadable Multiboot kernel (for early, clear errors: a file
/// without a Multiboot header is described by what it is instead, when that is clearer).
pub fn validate(path: &str, image: &[u8]) -> Result<(), LoadError> {
    let h = match find_header(path, image) {
        Ok(h) => h,
        Err(LoadError::NotMultiboot(_)) => {
            elf_checks(path, image)?;
            return Err(LoadError::NotMultiboot(path.into()));
        }
        Err(e) => return Err(e),
    };
    if h.flags & FLAG_AOUT_KLUDGE == 0 {
        elf_checks(path, image)?;
    }
    Ok(())
}

fn elf_checks<'a>(path: &str, image: &'a [u8]) -> Result<Elf<'a>, LoadError> {
    if image.len() < 4 || &image[..4] != b"\x7fELF" {
        return Err(LoadError::NotElf(path.into()));
    }
    let elf = Elf::parse(image).map_err(|e| LoadError::Malformed(path.into(), e.to_string()))?;
    if elf.is_64 {
        return Err(LoadError::WrongArch(path.into(), "a 64-bit ELF file".into()));
    }
    if elf.header.e_machine != header::EM_386 {
        return Err(LoadError::WrongArch(path.into(), format!("an ELF file for machine {}", header::machine_to_str(elf.header.e_machine))));
    }
    if elf.header.e_type != header::ET_EXEC {
        return Err(LoadError::WrongArch(path.into(), format!("an ELF {} file", header::et_to_str(elf.header.e_type))));
    }
    Ok(elf)
}

/// Loads the kernel `image` (read from `path`) into `ram` and writes the Multiboot
/// information with `cmdline`.
pub fn load(path: &str, image: &[u8], cmdline: &str, ram: &mut GuestRam) -> Result<Loaded, LoadError> {
    let h = find_header(path, image)?;
    let ram_size = ram.size();
    let fits = |start: u64, end: u64| -> Result<(), LoadError> {
        if end > ram_size || start > end {
            return Err(LoadError::TooBig(
                path.into(),
                format!("it occupies {start:#x}..{end:#x} but guest RAM is {} MiB", ram_size >> 20),
            ));
        }
        let (info_lo, info_hi) = (INFO_AREA.0 as u64, INFO_AREA.0 as u64 + INFO_AREA.1 as u64);
        if start < info_hi && end > info_lo {
            return Err(LoadError::Malformed(
                path.into(),
                format!("it loads at {start:#x}..{end:#x}, over {info_lo:#x}..{info_hi:#x} where the boot information goes"),
            ));
        }
        Ok(())
    };
    let (entry, image_end) = if h.flags & FLAG_AOUT_KLUDGE != 0 {
        // The header says where the file goes.
        if h.load_addr > h.header_addr {
            return Err(LoadError::Malformed(path.into(), "load_addr is above header_addr".into()));
        }
        let file_start = h.offset - (h.header_addr - h.load_addr) as usize;
        let load_len = if h.load_end_addr == 0 { image.len() - file_start } else { (h.load_end_addr.wrapping_sub(h.load_addr)) as usize };
        if file_start + load_len > image.len() {
            return Err(LoadError::Malformed(path.into(), "load_end_addr lies beyond the end of the file".into()));
        }
        let bss_end = if h.bss_end_addr == 0 { h.load_addr as u64 + load_len as u64 } else { h.bss_end_addr as u64 };
        fits(h.load_addr as u64, bss_end.max(h.load_addr as u64 + load_len as u64))?;
        ram.write(h.load_addr as u64, &image[file_start..file_start + load_len]);
        let zero = vec![0u8; (bss_end.saturating_sub(h.load_addr as u64 + load_len as u64)) as usize];
        ram.write(h.load_addr as u64 + load_len as u64, &zero);
        (h.entry_addr, bss_end as u32)
    } else {
        let elf = elf_checks(path, image)?;
        let mut end = 0u64;
        let mut entry = elf.header.e_entry as u32;
        for ph in elf.program_headers.iter().filter(|p| p.p_type == program_header::PT_LOAD) {
            let (paddr, filesz, memsz, off) = (ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_offset);
            if off.checked_add(filesz).is_none_or(|e| e > image.len() as u64) || filesz > memsz {
                return Err(LoadError::Malformed(path.into(), "a program header points outside the file".into()));
            }
            fits(paddr, paddr + memsz)?;
            ram.write(paddr, &image[off as usize..(off + filesz) as usize]);
            ram.write(paddr + filesz, &vec![0u8; (memsz - filesz) as usize]);
            end = end.max(paddr + memsz);
            // A kernel linked at virtual addresses: translate the entry as QEMU does.
            let v = ph.p_vaddr as u32;
            if (v..v.wrapping_add(memsz as u32)).contains(&(elf.header.e_entry as u32)) && ph.p_vaddr != ph.p_paddr {
                entry = (elf.header.e_entry as u32).wrapping_sub(v).wrapping_add(paddr as u32);
            }
        }
        if end == 0 {
            return Err(LoadError::Malformed(path.into(), "no loadable segments".into()));
        }
        (entry, end as u32)
    };
    let info = write_info(ram, path, cmdline);
    Ok(Loaded { entry, info, image_end })
}

/// The Multiboot information block: flags, mem_lower/mem_upper, boot device, command
/// line (QEMU passes "<kernel path> <append>"), an empty module list, the memory map and
/// the boot loader name.
fn write_info(ram: &mut GuestRam, path: &str, cmdline: &str) -> u32 {
    let base = INFO_AREA.0;
    let cmd_addr = base + 0x100;
    let name_addr = base + 0x1000;
    let mmap_addr = base + 0x1100;
    let mut cmd = format!("{path} {cmdline}").into_bytes();
    cmd.truncate(0xEFF);
    cmd.push(0);
    ram.write(cmd_addr as u64, &cmd);
    ram.write(name_addr as u64, b"bt86\0");

    let ram_size = ram.size();
    let mut mmap = Vec::new();
    for (addr, len, ty) in super::pc_memory_map(ram_size) {
        mmap.extend_from_slice(&20u32.to_le_bytes());
        mmap.extend_from_slice(&addr.to_le_bytes());
        mmap.extend_from_slice(&len.to_le_bytes());
        mmap.extend_from_slice(&ty.to_le_bytes());
    }
    ram.write(mmap_addr as u64, &mmap);

    let mut mbi = [0u32; 22];
    mbi[0] = 0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x200; // mem, boot device, cmdline, mods, mmap, loader name
    mbi[1] = 639; // mem_lower in KiB (below the EBDA)
    mbi[2] = ((ram_size - 0x10_0000) >> 10) as u32; // mem_upper in KiB
    mbi[3] = 0x8000_FFFF; // boot_device: none
    mbi[4] = cmd_addr;
    mbi[5] = 0; // mods_count
    mbi[6] = base + 0xF00; // mods_addr (empty list)
    mbi[11] = mmap.len() as u32;
    mbi[12] = mmap_addr;
    mbi[16] = name_addr;
    let bytes: Vec<u8> = mbi.iter().flat_map(|w| w.to_le_bytes()).collect();
    ram.write(base as u64, &bytes);
    base
}
