//! Linux block-device ioctls (linux/fs.h), shared by the output target and the flash engine.
//! BLKGETSIZE64 is encoded with sizeof(size_t) (4 on 32-bit ARM) but always writes a u64, hence the explicit
//! request code rather than nix's `ioctl_read!` (which would encode 8 and fail on the armv6 build).

nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
nix::ioctl_read_bad!(
    blkgetsize64,
    nix::request_code_read!(0x12, 114, std::mem::size_of::<libc::size_t>()),
    u64
);
nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);
