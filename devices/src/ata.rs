//! An ATA (IDE) channel with up to two hard disks, PIO only: the legacy primary channel
//! of a PC (command block 0x1F0-0x1F7, device control / alternate status 0x3F6, IRQ 14),
//! as QEMU's `hw/ide/core.c` presents an `-drive if=ide` disk to a guest. The board also
//! has the secondary channel (0x170-0x177, 0x376, IRQ 15), without disks, as QEMU's.
//!
//! Commands: IDENTIFY DEVICE, READ/WRITE SECTORS (LBA28 0x20/0x30, LBA48 0x24/0x34, CHS
//! too), READ/WRITE MULTIPLE (0xC4/0xC5, 0x29/0x39) with SET MULTIPLE MODE, FLUSH CACHE
//! (0xE7/0xEA), SET FEATURES, READ NATIVE MAX ADDRESS, VERIFY, EXECUTE DEVICE
//! DIAGNOSTIC and the power-management and seek no-ops. Anything else (DMA commands —
//! there is no bus-master DMA without PCI —, SMART, packet commands) is aborted.
//!
//! Behaviour matched with QEMU, since guest tests compare the two byte for byte:
//! - the IDENTIFY words (model "QEMU HARDDISK", serial "QM00001"/"QM00002", firmware
//!   "2.5+", QEMU's geometry guess from the size or an MBR partition table, multiple
//!   count 16); the data is built once, as QEMU builds it at the BIOS's first IDENTIFY,
//!   so word 59 keeps the power-on multiple count;
//! - status after each command: DRDY|DSC (0x50), with DRQ while data waits; errors set
//!   ERR with ABRT in the error register (0x41 / 0x04), also for a sector range beyond
//!   the end of the disk and for a write or flush the host refuses (QEMU's `werror=report`);
//! - an interrupt per PIO block (each sector, or each multiple block) read or written,
//!   after IDENTIFY, at the end of a flush and of a non-data command; none before the
//!   first block of a write. The line is a level, raised unless nIEN is set, lowered by a
//!   read of the status register or a command write (not by the alternate status);
//! - register writes go to both drives, and are ignored while BSY or DRQ; a missing slave
//!   reads status and error 0 and ignores commands; a channel without disks reads 0;
//! - SRST (device control bit 2, on its rising edge) resets both drives and runs the
//!   diagnostic (signature in the registers, error 1, interrupt unless nIEN);
//! - port access sizes as QEMU's port lists: 16- and 32-bit data port (a byte access
//!   moves a word), byte registers (a word access to them is two byte accesses, a dword
//!   reads all ones).
//!
//! Each command completes at once (the host file is read or written during the port
//! write), so BSY is never seen by the guest. Writes go to the [`DiskBackend`] as they
//! complete, in order; FLUSH CACHE syncs it (`fdatasync` for a [`FileDisk`]). A disk
//! opened read-only aborts write commands.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use crate::irq::IrqSink;

/// The command block's first port (data); the command/status register is the eighth.
pub const ATA_BASE: u16 = 0x1F0;
/// Ports in the command block.
pub const ATA_LEN: u16 = 8;
/// Device control (write) / alternate status (read).
pub const ATA_CONTROL_PORT: u16 = 0x3F6;
/// The primary channel's ISA interrupt line.
pub const ATA_IRQ: u8 = 14;
/// The secondary channel (command block, control port, IRQ): on QEMU's `pc` it exists
/// without disks, and so it does here (every register reads 0).
pub const ATA_SECONDARY: (u16, u16, u8) = (0x170, 0x376, 15);
/// Bytes per sector.
pub const SECTOR_SIZE: u64 = 512;
/// The largest block of READ/WRITE MULTIPLE, and the count after a reset (QEMU's
/// `MAX_MULT_SECTORS`).
pub const MAX_MULT_SECTORS: u32 = 16;

const SECTOR: usize = SECTOR_SIZE as usize;

// Status register.
const BSY: u8 = 0x80;
const DRDY: u8 = 0x40;
const DSC: u8 = 0x10;
const DRQ: u8 = 0x08;
const ERR: u8 = 0x01;
// Error register.
const ABRT: u8 = 0x04;
// Device control register.
const NIEN: u8 = 0x02;
const SRST: u8 = 0x04;
const HOB: u8 = 0x80;
// Device/head register.
const DEV_LBA: u8 = 0x40;
const DEV_SLAVE: u8 = 0x10;
const DEV_ALWAYS_ON: u8 = 0xA0;
const DEV_HEAD: u8 = 0x0F;

/// Where a disk's sectors live: a host file ([`FileDisk`]) or, in tests, memory.
pub trait DiskBackend: Send {
    /// Size in bytes; the disk has `size / 512` sectors (a partial last one is unused).
    fn size_bytes(&self) -> u64;
    /// True if writes must be refused.
    fn read_only(&self) -> bool;
    /// Fill `buf` from byte `offset`.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Store `buf` at byte `offset`, all of it or an error.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Make what was written durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

/// A disk image in a host file (or block device), read and written with
/// `pread`/`pwrite`, so every completed guest write is in the host's page cache at once
/// and survives bt86 being killed.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    size: u64,
    read_only: bool,
}

impl FileDisk {
    /// Opens `path` read-write (read-only if `read_only`). It must be a regular file or a
    /// block device holding at least one sector.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileDisk> {
        let mut file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let kind = file.metadata()?.file_type();
        if !kind.is_file() && !kind.is_block_device() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file or block device"));
        }
        let size = file.seek(SeekFrom::End(0))?;
        if size < SECTOR_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{size} bytes: smaller than one 512-byte sector")));
        }
        Ok(FileDisk { file, size, read_only })
    }
}

impl AsRawFd for FileDisk {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl DiskBackend for FileDisk {
    fn size_bytes(&self) -> u64 {
        self.size
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// What happens when the guest has moved the whole data buffer (QEMU's
/// `end_transfer_func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// Nothing (after a reset, or a finished command): the transfer just stops.
    Stop,
    /// READ (MULTIPLE): the next block.
    Read,
    /// WRITE (MULTIPLE): store the block, then ask for the next one.
    Write,
}

/// One drive: its task-file registers (with the previous values a 48-bit command reads
/// through HOB), its status and its data buffer.
struct Drive {
    disk: Option<Box<dyn DiskBackend>>,
    sectors: u64,
    /// Cylinders, heads, sectors per track.
    chs: (u32, u32, u32),
    identify: [u16; 256],
    write_cache: bool,
    feature: u8,
    nsector: u32,
    sector: u8,
    lcyl: u8,
    hcyl: u8,
    select: u8,
    hob_feature: u8,
    hob_nsector: u8,
    hob_sector: u8,
    hob_lcyl: u8,
    hob_hcyl: u8,
    status: u8,
    error: u8,
    lba48: bool,
    mult_sectors: u32,
    req_nb_sectors: u32,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    transfer: Transfer,
}

/// Whether a command has run to its end (QEMU's handlers' return value): the channel
/// then clears BSY, adds DSC for the commands that set it, and interrupts.
type Complete = bool;

impl Drive {
    fn new() -> Drive {
        let mut d = Drive {
            disk: None,
            sectors: 0,
            chs: (0, 0, 0),
            identify: [0; 256],
            write_cache: true,
            feature: 0,
            nsector: 0,
            sector: 0,
            lcyl: 0,
            hcyl: 0,
            select: 0,
            hob_feature: 0,
            hob_nsector: 0,
            hob_sector: 0,
            hob_lcyl: 0,
            hob_hcyl: 0,
            status: 0,
            error: 0,
            lba48: false,
            mult_sectors: 0,
            req_nb_sectors: 0,
            buf: vec![0; MAX_MULT_SECTORS as usize * SECTOR],
            pos: 0,
            end: 0,
            transfer: Transfer::Stop,
        };
        d.reset();
        d
    }

    fn attach(&mut self, unit: usize, mut disk: Box<dyn DiskBackend>) {
        self.sectors = disk.size_bytes() / SECTOR_SIZE;
        let mut mbr = [0u8; SECTOR];
        let mbr = disk.read_at(&mut mbr, 0).ok().map(|()| mbr);
        self.chs = guess_geometry(self.sectors, mbr.as_ref());
        self.disk = Some(disk);
        self.reset();
        self.identify = identify_words(unit, self.sectors, self.chs, self.mult_sectors);
    }

    /// QEMU's `ide_reset`.
    fn reset(&mut self) {
        self.mult_sectors = MAX_MULT_SECTORS;
        self.feature = 0;
        self.error = 0;
        self.nsector = 0;
        self.sector = 0;
        self.lcyl = 0;
        self.hcyl = 0;
        self.hob_feature = 0;
        self.hob_sector = 0;
        self.hob_nsector = 0;
        self.hob_lcyl = 0;
        self.hob_hcyl = 0;
        self.select = DEV_ALWAYS_ON;
        self.status = DRDY | DSC;
        self.lba48 = false;
        self.req_nb_sectors = 0;
        self.set_signature();
        self.halt();
    }

    fn set_signature(&mut self) {
        self.select &= !DEV_HEAD;
        self.nsector = 1;
        self.sector = 1;
        let v = if self.disk.is_some() { 0 } else { 0xFF };
        self.lcyl = v;
        self.hcyl = v;
    }

    fn abort(&mut self) {
        self.halt();
        self.status = DRDY | ERR;
        self.error = ABRT;
    }

    /// QEMU's `ide_transfer_halt`/`ide_transfer_stop`: no data phase.
    fn halt(&mut self) {
        self.transfer = Transfer::Stop;
        self.pos = 0;
        self.end = 0;
        self.status &= !DRQ;
    }

    fn start_transfer(&mut self, bytes: usize, then: Transfer) {
        self.transfer = then;
        self.pos = 0;
        self.end = bytes;
        if self.status & ERR == 0 {
            self.status |= DRQ;
        }
    }

    /// Data moves from the drive to the guest (everything but a write).
    fn pio_out(&self) -> bool {
        self.transfer != Transfer::Write
    }

    fn lba48_transform(&mut self, lba48: bool) {
        self.lba48 = lba48;
        if !lba48 {
            if self.nsector == 0 {
                self.nsector = 256;
            }
        } else if self.nsector == 0 && self.hob_nsector == 0 {
            self.nsector = 65536;
        } else {
            self.nsector = (u32::from(self.hob_nsector) << 8) | (self.nsector & 0xFF);
        }
    }

    /// The sector the registers address (negative for CHS sector 0).
    fn get_sector(&self) -> i64 {
        let (h, l, s) = (i64::from(self.hcyl), i64::from(self.lcyl), i64::from(self.sector));
        if self.select & DEV_LBA != 0 {
            if self.lba48 {
                (i64::from(self.hob_hcyl) << 40)
                    | (i64::from(self.hob_lcyl) << 32)
                    | (i64::from(self.hob_sector) << 24)
                    | (h << 16)
                    | (l << 8)
                    | s
            } else {
                (i64::from(self.select & DEV_HEAD) << 24) | (h << 16) | (l << 8) | s
            }
        } else {
            let (_, heads, secs) = self.chs;
            let (heads, secs) = (i64::from(heads), i64::from(secs));
            ((h << 8) | l) * heads * secs + i64::from(self.select & DEV_HEAD) * secs + (s - 1)
        }
    }

    fn set_sector(&mut self, n: i64) {
        if self.select & DEV_LBA != 0 {
            if self.lba48 {
                self.sector = n as u8;
                self.lcyl = (n >> 8) as u8;
                self.hcyl = (n >> 16) as u8;
                self.hob_sector = (n >> 24) as u8;
                self.hob_lcyl = (n >> 32) as u8;
                self.hob_hcyl = (n >> 40) as u8;
            } else {
                self.select = (self.select & !DEV_HEAD) | ((n >> 24) as u8 & DEV_HEAD);
                self.hcyl = (n >> 16) as u8;
                self.lcyl = (n >> 8) as u8;
                self.sector = n as u8;
            }
        } else {
            let (_, heads, secs) = self.chs;
            let per_cyl = i64::from(heads * secs).max(1);
            let (cyl, r) = (n / per_cyl, n % per_cyl);
            self.hcyl = (cyl >> 8) as u8;
            self.lcyl = cyl as u8;
            self.select = (self.select & !DEV_HEAD) | ((r / i64::from(secs.max(1))) as u8 & DEV_HEAD);
            self.sector = (r % i64::from(secs.max(1)) + 1) as u8;
        }
    }

    fn range_ok(&self, sector: i64, n: u32) -> bool {
        sector >= 0 && (sector as u64) <= self.sectors && u64::from(n) <= self.sectors - sector as u64
    }

    /// QEMU's `ide_sector_read`: the next block into the buffer. True: interrupt.
    fn sector_read(&mut self) -> bool {
        self.status = DRDY | DSC;
        self.error = 0;
        let sector = self.get_sector();
        if self.nsector == 0 {
            self.halt();
            return false;
        }
        let n = self.nsector.min(self.req_nb_sectors);
        let bytes = n as usize * SECTOR;
        if !self.range_ok(sector, n) {
            self.abort();
            return true;
        }
        let disk = self.disk.as_mut().expect("reads need a disk");
        if let Err(e) = disk.read_at(&mut self.buf[..bytes], sector as u64 * SECTOR_SIZE) {
            log::warn!("ATA: reading {n} sectors at {sector} from the disk image failed: {e}; the guest gets an error");
            self.abort();
            return true;
        }
        self.set_sector(sector + i64::from(n));
        self.nsector -= n;
        self.start_transfer(bytes, Transfer::Read);
        true
    }

    /// QEMU's `ide_sector_write` and its completion: the block the guest wrote goes to
    /// the disk, then the next one is asked for. True: interrupt.
    fn sector_write(&mut self) -> bool {
        self.status = DRDY | DSC | BSY;
        let sector = self.get_sector();
        let n = self.nsector.min(self.req_nb_sectors);
        let bytes = n as usize * SECTOR;
        if !self.range_ok(sector, n) {
            self.abort();
            return true;
        }
        let write_cache = self.write_cache;
        let disk = self.disk.as_mut().expect("writes need a disk");
        let written = if disk.read_only() {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "the disk is read-only"))
        } else {
            disk.write_at(&self.buf[..bytes], sector as u64 * SECTOR_SIZE).and_then(|()| if write_cache { Ok(()) } else { disk.sync() })
        };
        if let Err(e) = written {
            log::warn!("ATA: writing {n} sectors at {sector} to the disk image failed: {e}; the guest gets an error");
            self.abort();
            return true;
        }
        self.status &= !BSY;
        self.nsector -= n;
        self.set_sector(sector + i64::from(n));
        if self.nsector == 0 {
            self.halt();
        } else {
            let next = self.nsector.min(self.req_nb_sectors) as usize;
            self.start_transfer(next * SECTOR, Transfer::Write);
        }
        true
    }

    /// The guest moved the last byte of the buffer.
    fn end_transfer(&mut self) -> bool {
        self.status &= !DRQ;
        match self.transfer {
            Transfer::Stop => {
                self.halt();
                false
            }
            Transfer::Read => self.sector_read(),
            Transfer::Write => self.sector_write(),
        }
    }

    fn data_read(&mut self, size: usize) -> (u32, bool) {
        if self.status & DRQ == 0 || !self.pio_out() || self.pos + size > self.end {
            return (0, false);
        }
        let mut v = [0u8; 4];
        v[..size].copy_from_slice(&self.buf[self.pos..self.pos + size]);
        self.pos += size;
        let irq = self.pos >= self.end && self.end_transfer();
        (u32::from_le_bytes(v), irq)
    }

    fn data_write(&mut self, size: usize, value: u32) -> bool {
        if self.status & DRQ == 0 || self.pio_out() || self.pos + size > self.end {
            return false;
        }
        self.buf[self.pos..self.pos + size].copy_from_slice(&value.to_le_bytes()[..size]);
        self.pos += size;
        self.pos >= self.end && self.end_transfer()
    }

    fn flush(&mut self) -> bool {
        if let Some(disk) = self.disk.as_mut()
            && let Err(e) = disk.sync()
        {
            log::warn!("ATA: syncing the disk image failed: {e}; the guest gets an error");
            self.abort();
            return true;
        }
        self.status = DRDY | DSC;
        true
    }

    /// Runs command `cmd` (status is DRDY|BSY, error 0). `None`: not a command of a
    /// hard disk here (aborted). `Some((complete, irq))`: `complete` as QEMU's handler
    /// returns it; `irq`, for an incomplete command, that it interrupted itself.
    fn execute(&mut self, cmd: u8) -> Option<(Complete, bool)> {
        let has_disk = self.disk.is_some();
        let read_only = self.disk.as_ref().is_some_and(|d| d.read_only());
        let done = Some((true, false));
        match cmd {
            // RECALIBRATE, SEEK, INITIALIZE DEVICE PARAMETERS, standby/idle/sleep.
            0x10 | 0x70 | 0x91 | 0x94..=0x97 | 0x99 | 0xE0..=0xE3 | 0xE6 => done,
            // READ SECTORS (EXT).
            0x20 | 0x21 | 0x24 => {
                if !has_disk {
                    self.abort();
                    return done;
                }
                self.lba48_transform(cmd == 0x24);
                self.req_nb_sectors = 1;
                Some((false, self.sector_read()))
            }
            // READ MULTIPLE (EXT).
            0xC4 | 0x29 => {
                if !has_disk || self.mult_sectors == 0 {
                    self.abort();
                    return done;
                }
                self.lba48_transform(cmd == 0x29);
                self.req_nb_sectors = self.mult_sectors;
                Some((false, self.sector_read()))
            }
            // WRITE SECTORS (EXT), WRITE VERIFY; WRITE MULTIPLE (EXT).
            0x30 | 0x31 | 0x34 | 0x3C | 0xC5 | 0x39 => {
                let multiple = matches!(cmd, 0xC5 | 0x39);
                if !has_disk || read_only || (multiple && self.mult_sectors == 0) {
                    self.abort();
                    return done;
                }
                self.lba48_transform(matches!(cmd, 0x34 | 0x39));
                self.req_nb_sectors = if multiple { self.mult_sectors } else { 1 };
                let n = self.nsector.min(self.req_nb_sectors) as usize;
                self.status = DSC | DRDY;
                self.start_transfer(n * SECTOR, Transfer::Write);
                Some((false, false))
            }
            // READ VERIFY SECTORS (EXT): nothing to check.
            0x40..=0x42 => {
                self.lba48_transform(cmd == 0x42);
                done
            }
            0x90 => {
                // EXECUTE DEVICE DIAGNOSTIC: the error register holds the result.
                self.set_signature();
                self.status = DRDY | DSC;
                self.error = 0x01;
                Some((false, true))
            }
            // CHECK POWER MODE: active or idle.
            0x98 | 0xE5 => {
                self.nsector = 0xFF;
                done
            }
            0xC6 => {
                // SET MULTIPLE MODE: 0 (off) or a power of two up to the maximum.
                let n = self.nsector & 0xFF;
                if n != 0 && (n > MAX_MULT_SECTORS || !n.is_power_of_two()) {
                    self.abort();
                } else {
                    self.mult_sectors = n;
                }
                done
            }
            // FLUSH CACHE (EXT).
            0xE7 | 0xEA => Some((false, self.flush())),
            0xEC => {
                // IDENTIFY DEVICE.
                if !has_disk {
                    self.abort();
                    return done;
                }
                for (i, w) in self.identify.iter().enumerate() {
                    self.buf[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
                }
                self.status = DRDY | DSC;
                self.start_transfer(SECTOR, Transfer::Stop);
                Some((false, true))
            }
            0xEF => Some(self.set_features()),
            // READ NATIVE MAX ADDRESS (EXT).
            0xF8 | 0x27 => {
                if self.sectors == 0 {
                    self.abort();
                    return done;
                }
                self.lba48_transform(cmd == 0x27);
                self.set_sector(self.sectors as i64 - 1);
                done
            }
            // SECURITY FREEZE LOCK (CFA WEAR LEVEL in QEMU's table).
            0xF5 => {
                self.nsector = 0;
                done
            }
            _ => None,
        }
    }

    /// SET FEATURES as QEMU answers it: write cache on/off (off flushes and makes every
    /// later write synchronous), transfer modes reflected in IDENTIFY, a few no-ops.
    fn set_features(&mut self) -> (Complete, bool) {
        if self.disk.is_none() {
            self.abort();
            return (true, false);
        }
        match self.feature {
            0x02 => {
                self.write_cache = true;
                self.identify[85] = (1 << 14) | (1 << 5) | 1;
            }
            0x82 => {
                self.write_cache = false;
                self.identify[85] = (1 << 14) | 1;
                return (false, self.flush());
            }
            0xCC | 0x66 | 0xAA | 0x55 | 0x05 | 0x85 | 0x69 | 0x67 | 0x96 | 0x9A | 0x42 | 0xC2 => {}
            0x03 => {
                let mode = 1u16 << ((self.nsector & 7) + 8);
                let (w62, w63, w88) = match (self.nsector & 0xFF) >> 3 {
                    0 | 1 => (0x07, 0x07, 0x3F),
                    2 => (0x07 | mode, 0x07, 0x3F),
                    4 => (0x07, 0x07 | mode, 0x3F),
                    8 => (0x07, 0x07, 0x3F | mode),
                    _ => {
                        self.abort();
                        return (true, false);
                    }
                };
                self.identify[62] = w62;
                self.identify[63] = w63;
                self.identify[88] = w88;
            }
            _ => self.abort(),
        }
        (true, false)
    }
}

/// Commands after which the channel sets DSC (QEMU's `SET_DSC`).
fn sets_dsc(cmd: u8) -> bool {
    matches!(cmd, 0x10 | 0x27 | 0x40..=0x42 | 0x70 | 0x91 | 0x98 | 0xB0 | 0xC6 | 0xE5 | 0xEF | 0xF5 | 0xF8)
}

/// QEMU's `hd_geometry_guess`: from an MBR partition table that ends on a cylinder
/// boundary with at most 16 heads, else 16 heads, 63 sectors and as many cylinders as
/// fit (2 to 16383).
fn guess_geometry(sectors: u64, mbr: Option<&[u8; SECTOR]>) -> (u32, u32, u32) {
    let from_size = || ((sectors / (16 * 63)).clamp(2, 16383) as u32, 16, 63);
    let Some(mbr) = mbr.filter(|m| m[510] == 0x55 && m[511] == 0xAA) else {
        return from_size();
    };
    for p in mbr[0x1BE..0x1FE].chunks(16) {
        let nr_sects = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
        let (end_head, end_sector) = (u32::from(p[5]), u32::from(p[6]) & 63);
        if nr_sects == 0 || end_head == 0 || end_sector == 0 {
            continue;
        }
        let heads = end_head + 1;
        let cylinders = sectors / u64::from(heads * end_sector);
        if !(1..=16383).contains(&cylinders) {
            continue;
        }
        return if heads > 16 { from_size() } else { (cylinders as u32, heads, end_sector) };
    }
    from_size()
}

/// Puts `text` into IDENTIFY words as ATA strings: two characters a word, the first in
/// the high byte, padded with blanks.
fn put_string(words: &mut [u16], text: &str) {
    let bytes = text.as_bytes();
    for (i, w) in words.iter_mut().enumerate() {
        let at = |j: usize| u16::from(*bytes.get(j).unwrap_or(&b' '));
        *w = (at(2 * i) << 8) | at(2 * i + 1);
    }
}

/// QEMU's `ide_identify` for an `-drive if=ide` disk (defaults: write cache on, 512-byte
/// physical blocks, no WWN, a discard granularity).
fn identify_words(unit: usize, sectors: u64, (cyls, heads, secs): (u32, u32, u32), mult: u32) -> [u16; 256] {
    let mut p = [0u16; 256];
    p[0] = 0x0040;
    p[1] = cyls as u16;
    p[3] = heads as u16;
    p[4] = (512 * secs) as u16;
    p[5] = 512;
    p[6] = secs as u16;
    put_string(&mut p[10..20], &format!("QM{:05}", unit + 1));
    p[20] = 3;
    p[21] = 512;
    p[22] = 4;
    put_string(&mut p[23..27], "2.5+");
    put_string(&mut p[27..47], "QEMU HARDDISK");
    p[47] = 0x8000 | MAX_MULT_SECTORS as u16;
    p[48] = 1;
    p[49] = (1 << 11) | (1 << 9) | (1 << 8);
    p[51] = 0x200;
    p[52] = 0x200;
    p[53] = 7;
    p[54] = cyls as u16;
    p[55] = heads as u16;
    p[56] = secs as u16;
    let old = cyls * heads * secs;
    p[57] = old as u16;
    p[58] = (old >> 16) as u16;
    if mult != 0 {
        p[59] = 0x100 | mult as u16;
    }
    let lba28 = sectors.min((1 << 28) - 1);
    p[60] = lba28 as u16;
    p[61] = (lba28 >> 16) as u16;
    p[62] = 0x07;
    p[63] = 0x07;
    p[64] = 0x03;
    p[65..69].fill(120);
    p[69] = 1 << 14; // deterministic TRIM (QEMU's default discard granularity)
    p[80] = 0xF0;
    p[81] = 0x16;
    p[82] = (1 << 14) | (1 << 5) | 1;
    p[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10);
    p[84] = 1 << 14;
    p[85] = (1 << 14) | (1 << 5) | 1;
    p[86] = (1 << 13) | (1 << 12) | (1 << 10);
    p[87] = 1 << 14;
    p[88] = 0x3F | (1 << 13);
    p[93] = 1 | (1 << 14) | 0x2000;
    for (i, w) in p[100..104].iter_mut().enumerate() {
        *w = (sectors >> (16 * i)) as u16;
    }
    p[106] = 0x6000;
    p[169] = 1; // TRIM supported (through DATA SET MANAGEMENT, a DMA command)
    p
}

/// An ATA channel: two drive positions (master, slave) sharing the command block, the
/// device control register and one interrupt line.
pub struct AtaChannel {
    drives: [Drive; 2],
    /// The selected drive (DEV bit of the device/head register).
    unit: usize,
    /// The device control register (nIEN, SRST, HOB).
    control: u8,
    irq: u8,
    /// The interrupt line as last driven.
    line: bool,
}

impl std::fmt::Debug for AtaChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtaChannel")
            .field("disks", &[self.drives[0].disk.is_some(), self.drives[1].disk.is_some()])
            .field("unit", &self.unit)
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl AtaChannel {
    /// A channel with no disks, interrupting on ISA line `irq`.
    pub fn new(irq: u8) -> AtaChannel {
        AtaChannel { drives: [Drive::new(), Drive::new()], unit: 0, control: 0, irq, line: false }
    }

    /// Puts `disk` in position `unit` (0 master, 1 slave).
    pub fn attach(&mut self, unit: usize, disk: Box<dyn DiskBackend>) {
        self.drives[unit].attach(unit, disk);
    }

    /// Machine reset (QEMU's `ide_bus_reset`): master selected, device control 0, both
    /// drives reset; the disks stay.
    pub fn reset(&mut self) {
        self.unit = 0;
        self.control = 0;
        self.line = false;
        for d in &mut self.drives {
            d.reset();
        }
    }

    /// Syncs every disk (at exit).
    pub fn sync(&mut self) -> io::Result<()> {
        self.drives.iter_mut().filter_map(|d| d.disk.as_mut()).try_for_each(|d| d.sync())
    }

    fn no_disks(&self) -> bool {
        self.drives.iter().all(|d| d.disk.is_none())
    }

    /// The selected drive answers (a missing slave does not).
    fn answers(&self) -> bool {
        !self.no_disks() && (self.unit == 0 || self.drives[1].disk.is_some())
    }

    fn set_line(&mut self, level: bool, sink: &mut dyn IrqSink) {
        if self.line != level {
            self.line = level;
            sink.set_irq(self.irq, level);
        }
    }

    /// QEMU's `ide_set_irq`: raise the line unless nIEN.
    fn interrupt(&mut self, sink: &mut dyn IrqSink) {
        if self.control & NIEN == 0 {
            self.set_line(true, sink);
        }
    }

    /// A guest read of `size` bytes at command-block offset `offset` (0-7).
    pub fn read(&mut self, offset: u16, size: u8, sink: &mut dyn IrqSink) -> u32 {
        match (offset, size) {
            (0, _) => {
                // The data port is 16 or 32 bits wide: a byte read takes a word.
                let (v, irq) = self.drives[self.unit].data_read(usize::from(size.max(2)));
                if irq {
                    self.interrupt(sink);
                }
                v
            }
            (_, 1) => self.read_register(offset, sink),
            (_, 2) => {
                let high = if offset < 7 { self.read_register(offset + 1, sink) } else { 0xFF };
                self.read_register(offset, sink) | (high << 8)
            }
            _ => 0xFFFF_FFFF,
        }
    }

    fn read_register(&mut self, reg: u16, sink: &mut dyn IrqSink) -> u32 {
        let hob = self.control & HOB != 0;
        let none = self.no_disks();
        let d = &self.drives[self.unit];
        let v = match reg {
            1 if !self.answers() => 0,
            1 => {
                if hob {
                    d.hob_feature
                } else {
                    d.error
                }
            }
            _ if none && reg < 7 => 0,
            2 => {
                if hob {
                    d.hob_nsector
                } else {
                    d.nsector as u8
                }
            }
            3 => {
                if hob {
                    d.hob_sector
                } else {
                    d.sector
                }
            }
            4 => {
                if hob {
                    d.hob_lcyl
                } else {
                    d.lcyl
                }
            }
            5 => {
                if hob {
                    d.hob_hcyl
                } else {
                    d.hcyl
                }
            }
            6 => d.select,
            _ => {
                let status = if self.answers() { d.status } else { 0 };
                self.set_line(false, sink);
                status
            }
        };
        u32::from(v)
    }

    /// A guest write of `size` bytes at command-block offset `offset` (0-7).
    pub fn write(&mut self, offset: u16, size: u8, value: u32, sink: &mut dyn IrqSink) {
        if offset == 0 {
            // The data port is 16 or 32 bits wide: a byte write stores a word.
            if self.drives[self.unit].data_write(usize::from(size.max(2)), value) {
                self.interrupt(sink);
            }
            return;
        }
        match size {
            1 => self.write_register(offset, value as u8, sink),
            2 => {
                self.write_register(offset, value as u8, sink);
                if offset < 7 {
                    self.write_register(offset + 1, (value >> 8) as u8, sink);
                }
            }
            _ => {}
        }
    }

    fn write_register(&mut self, reg: u16, v: u8, sink: &mut dyn IrqSink) {
        if reg == 0 {
            return;
        }
        if reg != 7 && self.drives[self.unit].status & (BSY | DRQ) != 0 {
            return;
        }
        self.control &= !HOB;
        for d in &mut self.drives {
            match reg {
                1 => (d.hob_feature, d.feature) = (d.feature, v),
                2 => (d.hob_nsector, d.nsector) = (d.nsector as u8, u32::from(v)),
                3 => (d.hob_sector, d.sector) = (d.sector, v),
                4 => (d.hob_lcyl, d.lcyl) = (d.lcyl, v),
                5 => (d.hob_hcyl, d.hcyl) = (d.hcyl, v),
                6 => d.select = v | DEV_ALWAYS_ON,
                _ => {}
            }
        }
        match reg {
            6 => self.unit = usize::from(v & DEV_SLAVE != 0),
            7 => {
                self.set_line(false, sink);
                self.execute(v, sink);
            }
            _ => {}
        }
    }

    /// QEMU's `ide_exec_cmd`.
    fn execute(&mut self, cmd: u8, sink: &mut dyn IrqSink) {
        if self.unit == 1 && self.drives[1].disk.is_none() {
            return;
        }
        let d = &mut self.drives[self.unit];
        if d.status & (BSY | DRQ) != 0 {
            return;
        }
        d.status = DRDY | BSY;
        d.error = 0;
        let irq = match d.execute(cmd) {
            None => {
                d.abort();
                true
            }
            Some((true, _)) => {
                d.status &= !BSY;
                if sets_dsc(cmd) && d.error == 0 {
                    d.status |= DSC;
                }
                true
            }
            Some((false, irq)) => irq,
        };
        if irq {
            self.interrupt(sink);
        }
    }

    /// A guest read of the alternate status register (port 0x3F6): the status without
    /// touching the interrupt line.
    pub fn read_alt_status(&self, size: u8) -> u32 {
        let status = if self.answers() { u32::from(self.drives[self.unit].status) } else { 0 };
        match size {
            1 => status,
            2 => status | 0xFF00,
            _ => 0xFFFF_FFFF,
        }
    }

    /// A guest write of the device control register (port 0x3F6): nIEN, HOB, and SRST,
    /// which on its rising edge resets both drives.
    pub fn write_control(&mut self, value: u8, sink: &mut dyn IrqSink) {
        let reset = self.control & SRST == 0 && value & SRST != 0;
        self.control = value;
        if reset {
            for unit in 0..2 {
                let d = &mut self.drives[unit];
                d.reset();
                d.set_signature();
                d.status = DRDY | DSC;
                d.error = 0x01;
                self.interrupt(sink);
            }
            self.control &= !SRST;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::RecordingSink;
    use std::sync::{Arc, Mutex};

    /// A disk in memory whose bytes the test keeps a handle to; writes past `room`
    /// bytes fail with ENOSPC, as on a full host file system.
    #[derive(Clone)]
    struct MemDisk {
        data: Arc<Mutex<Vec<u8>>>,
        read_only: bool,
        room: usize,
        syncs: Arc<Mutex<usize>>,
    }

    impl MemDisk {
        fn new(sectors: usize) -> MemDisk {
            let data = (0..sectors * SECTOR).map(|i| (i / SECTOR) as u8 ^ (i as u8)).collect();
            MemDisk { data: Arc::new(Mutex::new(data)), read_only: false, room: usize::MAX, syncs: Arc::default() }
        }
        fn sector(&self, n: usize) -> Vec<u8> {
            self.data.lock().unwrap()[n * SECTOR..(n + 1) * SECTOR].to_vec()
        }
    }

    impl DiskBackend for MemDisk {
        fn size_bytes(&self) -> u64 {
            self.data.lock().unwrap().len() as u64
        }
        fn read_only(&self) -> bool {
            self.read_only
        }
        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let at = offset as usize;
            buf.copy_from_slice(&self.data.lock().unwrap()[at..at + buf.len()]);
            Ok(())
        }
        fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
            let at = offset as usize;
            if at + buf.len() > self.room {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.data.lock().unwrap()[at..at + buf.len()].copy_from_slice(buf);
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            *self.syncs.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn channel(disk: &MemDisk) -> (AtaChannel, RecordingSink) {
        let mut ch = AtaChannel::new(ATA_IRQ);
        ch.attach(0, Box::new(disk.clone()));
        (ch, RecordingSink::default())
    }

    fn status(ch: &mut AtaChannel, sink: &mut RecordingSink) -> u8 {
        ch.read(7, 1, sink) as u8
    }

    /// LBA28 task file for `count` sectors at `lba` on the master, then `cmd`.
    fn command28(ch: &mut AtaChannel, sink: &mut RecordingSink, lba: u32, count: u8, cmd: u8) {
        ch.write(6, 1, 0xE0 | (lba >> 24) & 0xF, sink);
        ch.write(2, 1, u32::from(count), sink);
        ch.write(3, 1, lba & 0xFF, sink);
        ch.write(4, 1, (lba >> 8) & 0xFF, sink);
        ch.write(5, 1, (lba >> 16) & 0xFF, sink);
        ch.write(7, 1, u32::from(cmd), sink);
    }

    fn read_block(ch: &mut AtaChannel, sink: &mut RecordingSink, bytes: usize) -> Vec<u8> {
        (0..bytes / 2).flat_map(|_| (ch.read(0, 2, sink) as u16).to_le_bytes()).collect()
    }

    fn write_block(ch: &mut AtaChannel, sink: &mut RecordingSink, data: &[u8]) {
        for w in data.chunks(4) {
            ch.write(0, 4, u32::from_le_bytes(w.try_into().unwrap()), sink);
        }
    }

    #[test]
    fn identify_words_as_qemu() {
        let disk = MemDisk::new(2048);
        let (mut ch, mut sink) = channel(&disk);
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        ch.write(7, 1, 0xEC, &mut sink);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1);
        assert_eq!(ch.read_alt_status(1), 0x58);
        assert!(sink.level(ATA_IRQ), "the alternate status leaves the line up");
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        assert!(!sink.level(ATA_IRQ));
        let words: Vec<u16> = read_block(&mut ch, &mut sink, 512).chunks(2).map(|w| u16::from_le_bytes([w[0], w[1]])).collect();
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1, "no interrupt at the end of the data");
        assert_eq!((words[0], words[1], words[3], words[6]), (0x40, 2, 16, 63));
        assert_eq!((words[60], words[61], words[100]), (2048, 0, 2048));
        assert_eq!((words[47], words[59], words[83]), (0x8010, 0x110, 0x7400));
        assert_eq!(&words[27..30], &[u16::from_be_bytes(*b"QE"), u16::from_be_bytes(*b"MU"), u16::from_be_bytes(*b" H")]);
        assert_eq!(
            &words[10..14],
            &[u16::from_be_bytes(*b"QM"), u16::from_be_bytes(*b"00"), u16::from_be_bytes(*b"00"), u16::from_be_bytes(*b"1 ")]
        );
        assert_eq!(ch.read(0, 2, &mut sink), 0, "no data phase");
    }

    #[test]
    fn geometry_from_an_mbr_partition_table() {
        let mut mbr = [0u8; SECTOR];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        let p = 0x1BE;
        mbr[p + 5] = 3; // end head: 4 heads
        mbr[p + 6] = 32; // 32 sectors per track
        mbr[p + 12] = 100;
        assert_eq!(guess_geometry(4096, Some(&mbr)), (32, 4, 32));
        assert_eq!(guess_geometry(4096, None), (4, 16, 63));
        assert_eq!(guess_geometry(100, None), (2, 16, 63));
    }

    #[test]
    fn read_sectors_one_interrupt_per_sector() {
        let disk = MemDisk::new(64);
        let (mut ch, mut sink) = channel(&disk);
        command28(&mut ch, &mut sink, 5, 2, 0x20);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1);
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        assert_eq!(read_block(&mut ch, &mut sink, 512), disk.sector(5));
        assert_eq!(sink.rising_edges(ATA_IRQ), 2, "the second sector is ready");
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        assert_eq!(read_block(&mut ch, &mut sink, 512), disk.sector(6));
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        assert_eq!(sink.rising_edges(ATA_IRQ), 2);
        // The registers point after the last sector read.
        assert_eq!((ch.read(3, 1, &mut sink), ch.read(2, 1, &mut sink)), (7, 0));
    }

    #[test]
    fn write_multiple_one_interrupt_per_block_and_data_in_order() {
        let disk = MemDisk::new(64);
        let (mut ch, mut sink) = channel(&disk);
        command28(&mut ch, &mut sink, 0, 4, 0xC6); // SET MULTIPLE MODE 4
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        command28(&mut ch, &mut sink, 10, 6, 0xC5);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1, "SET MULTIPLE interrupted, WRITE MULTIPLE not yet");
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        let data: Vec<u8> = (0..6 * SECTOR).map(|i| (i * 7) as u8).collect();
        write_block(&mut ch, &mut sink, &data[..4 * SECTOR]);
        assert_eq!(sink.rising_edges(ATA_IRQ), 2);
        assert_eq!(status(&mut ch, &mut sink), 0x58, "two sectors to go");
        write_block(&mut ch, &mut sink, &data[4 * SECTOR..]);
        assert_eq!(sink.rising_edges(ATA_IRQ), 3);
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        for i in 0..6 {
            assert_eq!(disk.sector(10 + i), &data[i * SECTOR..(i + 1) * SECTOR]);
        }
        // A bad multiple count is aborted.
        command28(&mut ch, &mut sink, 0, 3, 0xC6);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04));
    }

    #[test]
    fn lba48_read_with_hob_registers() {
        let disk = MemDisk::new(0x300);
        let (mut ch, mut sink) = channel(&disk);
        ch.write(6, 1, 0x40, &mut sink);
        for (reg, high, low) in [(2, 0, 1), (3, 0, 0x58), (4, 0, 2), (5, 0, 0)] {
            ch.write(reg, 1, high, &mut sink);
            ch.write(reg, 1, low, &mut sink);
        }
        ch.write(7, 1, 0x24, &mut sink);
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        assert_eq!(read_block(&mut ch, &mut sink, 512), disk.sector(0x258));
        ch.write_control(HOB, &mut sink);
        assert_eq!(ch.read(3, 1, &mut sink), 0, "the high byte of the LBA");
        ch.write_control(0, &mut sink);
        assert_eq!(ch.read(3, 1, &mut sink), 0x59);
    }

    #[test]
    fn beyond_the_end_is_aborted() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        command28(&mut ch, &mut sink, 15, 2, 0x20);
        assert_eq!(status(&mut ch, &mut sink), 0x58, "the last sector is there");
        read_block(&mut ch, &mut sink, 512);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04));
        assert_eq!(sink.rising_edges(ATA_IRQ), 2);
        command28(&mut ch, &mut sink, 16, 1, 0x30);
        assert_eq!(status(&mut ch, &mut sink), 0x58, "the data is asked for first");
        write_block(&mut ch, &mut sink, &[0xAA; 512]);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04));
        // The next command works.
        command28(&mut ch, &mut sink, 0, 1, 0x20);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x58, 0));
    }

    #[test]
    fn read_only_disk_aborts_writes() {
        let mut disk = MemDisk::new(16);
        disk.read_only = true;
        let before = disk.sector(3);
        let (mut ch, mut sink) = channel(&disk);
        command28(&mut ch, &mut sink, 3, 1, 0x30);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04));
        assert_eq!(sink.rising_edges(ATA_IRQ), 1);
        assert_eq!(ch.read(0, 2, &mut sink), 0, "no data phase");
        assert_eq!(disk.sector(3), before);
        command28(&mut ch, &mut sink, 3, 1, 0x20);
        assert_eq!(read_block(&mut ch, &mut sink, 512), before, "reads work");
    }

    #[test]
    fn host_enospc_is_an_ata_error_and_earlier_data_stays() {
        let mut disk = MemDisk::new(16);
        disk.room = 4 * SECTOR; // sectors 0-3 can be written
        let (mut ch, mut sink) = channel(&disk);
        command28(&mut ch, &mut sink, 2, 3, 0x30);
        write_block(&mut ch, &mut sink, &[0x11; 512]);
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        write_block(&mut ch, &mut sink, &[0x22; 512]);
        assert_eq!(status(&mut ch, &mut sink), 0x58);
        let untouched = disk.sector(4);
        write_block(&mut ch, &mut sink, &[0x33; 512]);
        assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04));
        assert_eq!(sink.rising_edges(ATA_IRQ), 3, "one per sector, the failed one too");
        assert_eq!((disk.sector(2), disk.sector(3), disk.sector(4)), (vec![0x11; 512], vec![0x22; 512], untouched));
        // The LBA registers point at the sector that failed.
        assert_eq!(ch.read(3, 1, &mut sink), 4);
    }

    #[test]
    fn flush_syncs_and_interrupts() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        ch.write(7, 1, 0xE7, &mut sink);
        assert_eq!(*disk.syncs.lock().unwrap(), 1);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1);
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        ch.write(7, 1, 0xEA, &mut sink);
        assert_eq!(*disk.syncs.lock().unwrap(), 2);
        ch.sync().unwrap();
        assert_eq!(*disk.syncs.lock().unwrap(), 3);
    }

    #[test]
    fn nien_keeps_the_line_low() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        ch.write_control(NIEN, &mut sink);
        command28(&mut ch, &mut sink, 0, 1, 0x20);
        assert_eq!(sink.rising_edges(ATA_IRQ), 0);
        assert_eq!(ch.read_alt_status(1), 0x58);
        read_block(&mut ch, &mut sink, 512);
        ch.write_control(0, &mut sink);
        command28(&mut ch, &mut sink, 0, 1, 0x20);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1);
    }

    #[test]
    fn srst_resets_both_drives_with_the_signature() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        ch.attach(1, Box::new(MemDisk::new(8)));
        command28(&mut ch, &mut sink, 7, 1, 0x20);
        ch.write(6, 1, 0xF0, &mut sink); // ignored: DRQ
        assert_eq!(ch.read(6, 1, &mut sink), 0xE0);
        ch.write_control(SRST | NIEN, &mut sink);
        ch.write_control(NIEN, &mut sink);
        assert_eq!(sink.rising_edges(ATA_IRQ), 1, "only the read's");
        for unit in [0xA0, 0xB0] {
            ch.write(6, 1, unit, &mut sink);
            let regs: Vec<u32> = (1..8).map(|r| ch.read(r, 1, &mut sink)).collect();
            assert_eq!(regs, [1, 1, 1, 0, 0, unit, 0x50]);
        }
        assert_eq!(ch.read(0, 2, &mut sink), 0);
    }

    #[test]
    fn missing_slave_and_empty_channel() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        ch.write(6, 1, 0xB0, &mut sink);
        ch.write(7, 1, 0xEC, &mut sink);
        assert_eq!((ch.read(7, 1, &mut sink), ch.read(1, 1, &mut sink), ch.read_alt_status(1)), (0, 0, 0));
        assert_eq!(sink.rising_edges(ATA_IRQ), 0);
        let mut empty = AtaChannel::new(ATA_IRQ);
        assert_eq!((1..8).map(|r| empty.read(r, 1, &mut sink)).collect::<Vec<_>>(), [0; 7]);
        assert_eq!(empty.read(0, 1, &mut sink), 0, "no data phase");
        assert_eq!(empty.read(4, 4, &mut sink), 0xFFFF_FFFF);
    }

    #[test]
    fn unknown_and_dma_commands_abort() {
        let disk = MemDisk::new(16);
        let (mut ch, mut sink) = channel(&disk);
        for cmd in [0xC8, 0xA1, 0x00] {
            ch.write(7, 1, cmd, &mut sink);
            assert_eq!((status(&mut ch, &mut sink), ch.read(1, 1, &mut sink)), (0x41, 0x04), "{cmd:#x}");
        }
        ch.write(7, 1, 0xF8, &mut sink); // READ NATIVE MAX ADDRESS (CHS mode: 16 heads, 63 sectors)
        assert_eq!(status(&mut ch, &mut sink), 0x50);
        assert_eq!((ch.read(3, 1, &mut sink), ch.read(6, 1, &mut sink)), (16, 0xA0));
    }

    #[test]
    fn file_disk_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("bt86-ata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        std::fs::write(&path, vec![0u8; 4 * SECTOR + 100]).unwrap();
        let mut disk = FileDisk::open(&path, false).unwrap();
        assert_eq!(disk.size_bytes() / SECTOR_SIZE, 4);
        disk.write_at(&[7; 512], 512).unwrap();
        disk.sync().unwrap();
        let mut back = [0; 512];
        FileDisk::open(&path, true).unwrap().read_at(&mut back, 512).unwrap();
        assert_eq!(back, [7; 512]);
        assert!(FileDisk::open(&dir, false).is_err(), "a directory");
        assert!(FileDisk::open(&dir.join("missing"), false).is_err());
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert!(FileDisk::open(&path, false).is_err(), "smaller than a sector");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
