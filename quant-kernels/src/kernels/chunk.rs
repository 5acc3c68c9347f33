//! The 8-element chunk: the unit of global memory access of every quantizer.
//!
//! A full chunk of a 16-byte aligned row is one 16-byte load (two for f32)
//! and one 8-byte store of codes; a chunk cut by the end of a row (a K tail)
//! or misaligned by the row stride falls back to element accesses.
//!
//! Chunks are kept in their raw form (packed bits) until encoding: the amax
//! is taken on the bit patterns (for non-negative floats, integer order is
//! value order, and every NaN pattern is above +inf, so an integer max also
//! propagates NaN), which keeps a bf16 chunk in 4 registers instead of 8
//! f32 and lets the block kernel hold 64 values per thread cheaply.

use super::{Bf16, Input, F16};
use crate::instr::{cp_async16, ld_global16, ld_shared16, max_u16x2, opaque_u32, st_shared16};

/// Elements in one chunk.
pub const ELEMS_PER_THREAD: u64 = crate::geometry::ELEMS_PER_CHUNK;

/// An input type read in chunks of eight.
pub trait Load8: Input {
    /// The chunk's bits as loaded.
    type Raw: Copy;
    /// A chunk of zeros.
    const ZERO: Self::Raw;

    /// Loads the first `valid` (at most 8) elements at `src`; the rest are 0.
    ///
    /// # Safety
    /// The `valid` elements at `src` are readable.
    unsafe fn load(src: *const Self, valid: u64) -> Self::Raw;

    /// Loads a whole chunk, without the checks of [`Load8::load`].
    ///
    /// # Safety
    /// The 8 elements at `src` are readable and `src` is 16-byte aligned.
    unsafe fn load_whole(src: *const Self) -> Self::Raw;

    /// Folds the chunk's `max |x|` into `acc`, a running maximum over bit
    /// patterns of `|x|` in the type's own packing (start from 0). Any NaN
    /// gives a NaN pattern.
    fn fold_abs_max(acc: u32, raw: &Self::Raw) -> u32;

    /// The f32 value of an accumulator built by `fold_abs_max`, or of the
    /// bits [`Load8::abs_max_bits`] makes of one.
    fn abs_max_to_f32(acc: u32) -> f32;

    /// The bit pattern of the largest `|x|` of an accumulator built by
    /// `fold_abs_max`, as a `u32` whose integer order is the values' order
    /// (NaN above +inf), so lanes can take the maximum of several before
    /// one [`Load8::abs_max_to_f32`].
    fn abs_max_bits(acc: u32) -> u32;

    /// The chunk's values as f32.
    fn unpack(raw: &Self::Raw) -> [f32; 8];

    /// 16-byte pieces in a chunk.
    const PIECES: u32;

    /// Puts the first `valid` elements at `src` into shared memory, the rest
    /// zero: piece `p` of the chunk goes to shared address `dst + p * stride`.
    /// A whole chunk is copied asynchronously (`cp.async`, sm_80+; complete
    /// after `cp.async.wait_group`); a partial one (a K tail, or a row past
    /// the block) is loaded element by element and stored at once, since a
    /// 16-byte `cp.async` with a shorter source size still counts as a
    /// 16-byte read for compute-sanitizer and may run past the allocation.
    ///
    /// # Safety
    /// The `valid` elements at `src` are readable, and 16-byte aligned when
    /// `valid == 8`; the destinations are 16-byte aligned shared memory the
    /// thread owns.
    unsafe fn stage(dst: u32, stride: u32, src: *const Self, valid: u64) {
        if valid == ELEMS_PER_THREAD {
            let mut p = 0;
            while p < Self::PIECES {
                cp_async16(dst + p * stride, (src as *const u8).add(16 * p as usize));
                p += 1;
            }
        } else {
            Self::write_staged(dst, stride, &Self::load(src, valid));
        }
    }

    /// Stores a loaded chunk where [`Load8::stage`] puts it.
    ///
    /// # Safety
    /// As for `stage`.
    unsafe fn write_staged(dst: u32, stride: u32, raw: &Self::Raw);

    /// Reads back a chunk [`Load8::stage`] copied, once its copies have
    /// completed (`cp.async.wait_group`).
    ///
    /// # Safety
    /// As for `stage`, and the copies are complete.
    unsafe fn read_staged(src: u32, stride: u32) -> Self::Raw;
}

/// `valid` (at most 8) as a count the compiler cannot see through, for the
/// element-wise slow paths: their eight `i < valid` tests then stay inside
/// them. Computed from `valid` itself, LLVM hoisted those tests above the
/// fast-path branch, they stayed live across the whole kernel, and ptxas
/// kept them as bits of a register: about 45 instructions per chunk even
/// when every chunk is whole (an ncu profile of the token-group kernel).
/// [`opaque_u32`] keeps it from being speculated out of the branch.
#[inline(always)]
fn slow_count(valid: u64) -> u32 {
    opaque_u32(valid.min(8) as u32)
}

/// Loads eight 16-bit elements into four words (element `2i` in the low half
/// of word `i`, as a 16-byte load lays them out).
#[inline(always)]
unsafe fn load_halves(src: *const u16, valid: u64) -> [u32; 4] {
    if valid == ELEMS_PER_THREAD && (src as usize) % 16 == 0 {
        return ld_global16(src as *const u8);
    }
    let valid = slow_count(valid);
    if valid == 0 {
        // A chunk wholly past the row's end (the K tail group's last
        // chunks when K is a multiple of 8): nothing to test per element.
        return [0; 4];
    }
    let mut w = [0u32; 4];
    unroll8!(i => {
        if (i as u32) < valid {
            w[i / 2] |= (src.add(i).read() as u32) << (16 * (i % 2));
        }
    });
    w
}

/// The running `max |x|` of 16-bit elements is kept packed, one maximum per
/// half-word: clearing both sign bits is one `and`, and on sm_90 one
/// `max.u16x2` takes two elements, where unpacking each element first cost
/// three instructions per pair (shift, extend, mask) before the max. The
/// halves are combined once, in [`halves_acc_to_bits`].
#[inline(always)]
fn fold_abs_max_halves(acc: u32, w: &[u32; 4]) -> u32 {
    let mut m = acc;
    let mut i = 0;
    while i < 4 {
        m = max_u16x2(m, w[i] & 0x7FFF_7FFF);
        i += 1;
    }
    m
}

/// The larger half of a packed accumulator: the bits of the largest `|x|`.
#[inline(always)]
fn halves_acc_to_bits(acc: u32) -> u16 {
    (acc & 0xFFFF).max(acc >> 16) as u16
}

#[inline(always)]
fn unpack_halves(w: &[u32; 4], convert: impl Fn(u16) -> f32) -> [f32; 8] {
    let mut v = [0f32; 8];
    unroll8!(i => {
        v[i] = convert((w[i / 2] >> (16 * (i % 2))) as u16);
    });
    v
}

/// The two 16-bit types differ only in how a bit pattern becomes an f32.
macro_rules! impl_load8_for_halves {
    ($($t:ident),*) => {$(
        impl Load8 for $t {
            type Raw = [u32; 4];
            const ZERO: [u32; 4] = [0; 4];
            #[inline(always)]
            unsafe fn load(src: *const Self, valid: u64) -> [u32; 4] {
                load_halves(src as *const u16, valid)
            }
            #[inline(always)]
            unsafe fn load_whole(src: *const Self) -> [u32; 4] {
                ld_global16(src as *const u8)
            }
            #[inline(always)]
            fn fold_abs_max(acc: u32, raw: &[u32; 4]) -> u32 {
                fold_abs_max_halves(acc, raw)
            }
            #[inline(always)]
            fn abs_max_to_f32(acc: u32) -> f32 {
                $t(halves_acc_to_bits(acc)).to_f32()
            }
            #[inline(always)]
            fn abs_max_bits(acc: u32) -> u32 {
                halves_acc_to_bits(acc) as u32
            }
            #[inline(always)]
            fn unpack(raw: &[u32; 4]) -> [f32; 8] {
                unpack_halves(raw, |b| $t(b).to_f32())
            }
            const PIECES: u32 = 1;
            #[inline(always)]
            unsafe fn read_staged(src: u32, _stride: u32) -> [u32; 4] {
                ld_shared16(src)
            }
            #[inline(always)]
            unsafe fn write_staged(dst: u32, _stride: u32, raw: &[u32; 4]) {
                st_shared16(dst, *raw)
            }
        }
    )*};
}

impl_load8_for_halves!(Bf16, F16);

impl Load8 for f32 {
    type Raw = [u32; 8];
    const ZERO: [u32; 8] = [0; 8];
    #[inline(always)]
    unsafe fn load(src: *const Self, valid: u64) -> [u32; 8] {
        if valid == ELEMS_PER_THREAD && (src as usize) % 16 == 0 {
            return Self::load_whole(src);
        }
        let valid = slow_count(valid);
        if valid == 0 {
            return [0; 8];
        }
        let mut w = [0u32; 8];
        unroll8!(i => {
            if (i as u32) < valid {
                w[i] = src.add(i).read().to_bits();
            }
        });
        w
    }
    #[inline(always)]
    unsafe fn load_whole(src: *const Self) -> [u32; 8] {
        let a = ld_global16(src as *const u8);
        let b = ld_global16((src as *const u8).add(16));
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    }
    #[inline(always)]
    fn fold_abs_max(acc: u32, raw: &[u32; 8]) -> u32 {
        let mut m = acc;
        unroll8!(i => {
            m = m.max(raw[i] & 0x7FFF_FFFF);
        });
        m
    }
    #[inline(always)]
    fn abs_max_to_f32(acc: u32) -> f32 {
        f32::from_bits(acc)
    }
    #[inline(always)]
    fn abs_max_bits(acc: u32) -> u32 {
        acc
    }
    #[inline(always)]
    fn unpack(raw: &[u32; 8]) -> [f32; 8] {
        raw.map(f32::from_bits)
    }
    const PIECES: u32 = 2;
    #[inline(always)]
    unsafe fn read_staged(src: u32, stride: u32) -> [u32; 8] {
        let (a, b) = (ld_shared16(src), ld_shared16(src + stride));
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    }
    #[inline(always)]
    unsafe fn write_staged(dst: u32, stride: u32, raw: &[u32; 8]) {
        st_shared16(dst, [raw[0], raw[1], raw[2], raw[3]]);
        st_shared16(dst + stride, [raw[4], raw[5], raw[6], raw[7]]);
    }
}

/// Stores the first `valid` (at most 8) codes at `dst`; code `i` is byte `i`
/// of `codes`.
///
/// # Safety
/// The `valid` bytes at `dst` are writable.
#[inline(always)]
pub unsafe fn store_chunk(dst: *mut u8, codes: u64, valid: u64) {
    if valid == ELEMS_PER_THREAD && (dst as usize) % 8 == 0 {
        store_whole(dst, codes);
        return;
    }
    let valid = slow_count(valid);
    if valid == 0 {
        return;
    }
    unroll8!(i => {
        if (i as u32) < valid {
            dst.add(i).write((codes >> (8 * i)) as u8);
        }
    });
}

/// Stores a whole chunk's codes, without the checks of [`store_chunk`].
///
/// # Safety
/// The 8 bytes at `dst` are writable and `dst` is 8-byte aligned.
#[inline(always)]
pub unsafe fn store_whole(dst: *mut u8, codes: u64) {
    (dst as *mut u64).write(codes);
}
