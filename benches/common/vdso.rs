//! The kernel's vDSO getrandom (Linux 6.11+), the peer for user-space
//! randomness: found by parsing the vDSO's ELF image, its opaque state
//! mapped as the kernel's parameters say (see the kernel's
//! `lib/vdso/getrandom.c` and `tools/testing/selftests/vDSO/`).
//!
//! Built on 64-bit Linux only: ELF64 offsets and addresses fit `usize`.

// The one place outside src/ with `unsafe` (Cargo.toml's lint list):
// it calls a function found in the kernel's ELF image.
#![allow(unsafe_code)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use core::ffi::{c_uint, c_void};
use core::ptr::null_mut;

/// `ssize_t __vdso_getrandom(void *buffer, size_t len, unsigned int flags,
/// void *opaque_state, size_t opaque_len)`.
type VGetrandom = unsafe extern "C" fn(*mut c_void, usize, c_uint, *mut c_void, usize) -> isize;

/// `struct vgetrandom_opaque_params` (include/uapi/linux/random.h).
#[repr(C)]
#[derive(Default)]
struct Params {
    size_of_opaque_state: u32,
    mmap_prot: u32,
    mmap_flags: u32,
    reserved: [u32; 13],
}

/// One thread's vDSO getrandom: the function and its own opaque state.
pub struct VdsoGetrandom {
    f: VGetrandom,
    state: *mut c_void,
    state_len: usize,
}

/// Reads a `T` at `base + off` of the vDSO image.
///
/// # Safety
/// `base + off .. + size_of::<T>()` must lie inside the mapped vDSO.
unsafe fn at<T: Copy>(base: usize, off: u64) -> T {
    // SAFETY: the caller keeps the read inside the vDSO image, which is
    // mapped readable for the life of the process; unaligned reads are
    // allowed by `read_unaligned`.
    unsafe { ((base + off as usize) as *const T).read_unaligned() }
}

/// The C string at `p` equals `want`.
///
/// # Safety
/// `p` must point at a NUL-terminated string inside the vDSO.
unsafe fn name_is(p: usize, want: &[u8]) -> bool {
    // SAFETY: the caller's string is NUL-terminated inside the vDSO: we
    // stop at the first mismatch, which at the latest is its NUL.
    want.iter()
        .chain(&[0u8])
        .enumerate()
        .all(|(i, &c)| unsafe { at::<u8>(p, i as u64) } == c)
}

/// `__vdso_getrandom` of version `LINUX_2.6`, found through
/// `AT_SYSINFO_EHDR`; `None` where the vDSO lacks it.
fn find() -> Option<VGetrandom> {
    // SAFETY: getauxval only reads the auxiliary vector.
    let base = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if base == 0 {
        return None;
    }
    // SAFETY: (this block and the reads below) the kernel maps a whole,
    // well-formed ELF64 image at `base`; every offset read comes from
    // that image's own headers and tables.
    unsafe {
        if at::<[u8; 5]>(base, 0) != *b"\x7fELF\x02" {
            return None;
        }
        let phoff: u64 = at(base, 32);
        let phentsize = u64::from(at::<u16>(base, 54));
        let phnum = u64::from(at::<u16>(base, 56));
        let (mut load, mut dynamic) = (None, None);
        for i in 0..phnum {
            let ph = phoff + i * phentsize;
            let (p_type, p_offset, p_vaddr): (u32, u64, u64) =
                (at(base, ph), at(base, ph + 8), at(base, ph + 16));
            match p_type {
                // PT_LOAD: where the image's addresses point.
                1 if load.is_none() => {
                    load = Some((base as u64 + p_offset).wrapping_sub(p_vaddr) as usize)
                }
                // PT_DYNAMIC.
                2 => dynamic = Some(p_offset),
                _ => {}
            }
        }
        let (load, dynamic) = (load?, dynamic?);
        let (mut strtab, mut symtab, mut hash, mut versym, mut verdef) =
            (None, None, None, None, None);
        let mut d = dynamic;
        loop {
            let (tag, val): (i64, u64) = (at(base, d), at(base, d + 8));
            let addr = Some(load + val as usize);
            match tag {
                0 => break,
                4 => hash = addr,
                5 => strtab = addr,
                6 => symtab = addr,
                0x6fff_fff0 => versym = addr,
                0x6fff_fffc => verdef = addr,
                _ => {}
            }
            d += 16;
        }
        let (strtab, symtab, hash) = (strtab?, symtab?, hash?);
        // DT_HASH: nbucket, nchain; nchain is the symbol count.
        let nsyms = u64::from(at::<u32>(hash, 4));
        for i in 0..nsyms {
            let sym = i * 24;
            let (name, info, shndx, value): (u32, u8, u16, u64) = (
                at(symtab, sym),
                at(symtab, sym + 4),
                at(symtab, sym + 6),
                at(symtab, sym + 8),
            );
            // STT_FUNC, STB_GLOBAL or STB_WEAK, defined.
            if info & 0xf != 2 || !matches!(info >> 4, 1 | 2) || shndx == 0 {
                continue;
            }
            if !name_is(strtab + name as usize, b"__vdso_getrandom") {
                continue;
            }
            if let (Some(versym), Some(verdef)) = (versym, verdef) {
                let ndx = at::<u16>(versym, i * 2) & 0x7fff;
                if !version_is(verdef, strtab, ndx, b"LINUX_2.6") {
                    continue;
                }
            }
            let addr = load + value as usize;
            return Some(core::mem::transmute::<usize, VGetrandom>(addr));
        }
        None
    }
}

/// The version definition with index `ndx` is named `want`.
///
/// # Safety
/// `verdef` and `strtab` must be the vDSO's tables.
unsafe fn version_is(verdef: usize, strtab: usize, ndx: u16, want: &[u8]) -> bool {
    // SAFETY: the caller passes the vDSO's own tables; the chain ends
    // with `vd_next == 0`.
    unsafe {
        let mut def = verdef;
        loop {
            let (vd_ndx, vd_aux, vd_next): (u16, u32, u32) = (at(def, 4), at(def, 12), at(def, 16));
            if vd_ndx == ndx {
                let vda_name: u32 = at(def + vd_aux as usize, 0);
                return name_is(strtab + vda_name as usize, want);
            }
            if vd_next == 0 {
                return false;
            }
            def += vd_next as usize;
        }
    }
}

impl VdsoGetrandom {
    /// The vDSO function with one opaque state, or why not.
    pub fn new() -> Result<Self, &'static str> {
        let f = find().ok_or("the vDSO has no __vdso_getrandom (LINUX_2.6)")?;
        let mut params = Params::default();
        // SAFETY: the documented parameter query: null buffer, zero
        // length and flags, `opaque_len = ~0UL`, and a pointer to a
        // `vgetrandom_opaque_params` it fills in.
        let r = unsafe { f(null_mut(), 0, 0, (&raw mut params).cast(), !0usize) };
        if r != 0 || params.size_of_opaque_state == 0 {
            return Err("the vDSO getrandom refused the parameter query");
        }
        let state_len = params.size_of_opaque_state as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let len = state_len.div_ceil(page) * page;
        // SAFETY: a new anonymous mapping with the protection and flags
        // the kernel asked for (MAP_DROPPABLE | MAP_ANONYMOUS), at an
        // address of its choosing; one state at its start, which does
        // not cross a page boundary (it fits within `len`).
        let state = unsafe {
            libc::mmap(
                null_mut(),
                len,
                params.mmap_prot as i32,
                params.mmap_flags as i32,
                -1,
                0,
            )
        };
        if state == libc::MAP_FAILED {
            return Err("mmap of the vDSO getrandom state failed");
        }
        Ok(Self {
            f,
            state,
            state_len,
        })
    }

    /// Fills `out` (looping, as a caller must, on short returns).
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), isize> {
        let mut done = 0;
        while done < out.len() {
            let rest = &mut out[done..];
            // SAFETY: `rest` is writable for its length; the state was
            // mapped as the parameters said and is used by this thread
            // only (`&mut self`; the type is not `Send`).
            let n = unsafe {
                (self.f)(
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    0,
                    self.state,
                    self.state_len,
                )
            };
            if n <= 0 {
                return Err(n);
            }
            done += n as usize;
        }
        Ok(())
    }
}
