//! `--disk FILE[,readonly]`: the disk images of the primary ATA channel (the first is
//! the master, the second the slave), opened before the machine is built so that a bad
//! one is a usage error, and attached to the board with their descriptors registered
//! for syncing on every way out ([`crate::host::disk_sync`]).

use std::os::fd::AsRawFd;
use std::path::Path;

use bt86_devices::Platform;
use bt86_devices::ata::FileDisk;

/// Drive positions on the primary channel.
const MAX_DISKS: usize = 2;

/// Opens the images `--disk` names, in order; the message says what is wrong with the
/// first bad one.
pub fn open(specs: &[String]) -> Result<Vec<FileDisk>, String> {
    if specs.len() > MAX_DISKS {
        return Err(format!("invalid --disk: {} disks given, at most {MAX_DISKS} (the primary channel's master and slave)", specs.len()));
    }
    specs.iter().map(|spec| open_one(spec)).collect()
}

fn open_one(spec: &str) -> Result<FileDisk, String> {
    let mut parts = spec.split(',');
    let path = parts.next().unwrap_or_default();
    let mut read_only = false;
    for option in parts {
        match option {
            "readonly" => read_only = true,
            _ => return Err(format!("invalid --disk {spec:?}: unknown option {option:?} (FILE or FILE,readonly)")),
        }
    }
    if path.is_empty() {
        return Err(format!("invalid --disk {spec:?}: no file name"));
    }
    FileDisk::open(Path::new(path), read_only).map_err(|e| format!("cannot use disk image {path}: {e}"))
}

/// Puts the images on the board (master first) and has them synced on every way out.
pub fn attach(platform: &mut Platform, disks: Vec<FileDisk>) {
    if !disks.is_empty() {
        crate::host::terminal::install_exit_signal_handlers();
    }
    for (unit, disk) in disks.into_iter().enumerate() {
        crate::host::disk_sync::register(unit, disk.as_raw_fd());
        platform.attach_disk(unit, Box::new(disk));
    }
}
