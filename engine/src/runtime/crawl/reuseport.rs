//! Attaching the owner program to a `SO_REUSEPORT` socket group: the crawler's only
//! socket-touching code, kept apart so everything else in `crawl` stays I/O-free.
//!
//! Owns the one `setsockopt` call. Must not create, bind or read sockets: the
//! runtime binds one socket per core, in core order (the kernel's socket index is
//! the order of binding), then calls [`attach_owner_program`] on any one of them;
//! the program then steers the whole group.
//!
//! Caveat for the runtime: if a socket of the group is closed, the kernel moves the
//! last socket into its slot, so a group is torn down and rebuilt as a whole.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use crate::crawl::owner::{program, Family};

/// `SO_ATTACH_REUSEPORT_CBPF` from `asm-generic/socket.h` (libc exports it only
/// for some targets). MIPS, SPARC and PA-RISC number it differently.
#[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Makes the kernel deliver each datagram of `family` arriving at `socket`'s
/// reuseport group to the socket whose binding index is
/// [`owner`](crate::crawl::owner::owner)`(source, cores)`.
pub fn attach_owner_program(socket: &impl AsFd, family: Family, cores: usize) -> io::Result<()> {
    let filter = program(family, cores);
    let fprog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points into `filter`, which outlives the call; the kernel
    // copies the program before returning.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
