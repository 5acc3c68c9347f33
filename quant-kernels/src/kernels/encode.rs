//! Element-wise fp8 encode and decode of f32 arrays.
//!
//! These run the exact conversion path the quantizers use (the hardware
//! converter on sm_90 for E4M3FN), so the host can check it against the
//! software encoder over every f32 bit pattern. One thread per 8 elements.

use super::encode8;
use crate::abi::CodecParams;
use crate::instr::global_thread_index;
use crate::Fp8Format;

#[inline(always)]
unsafe fn encode_chunk(format: Fp8Format, x: *const f32, q: *mut u8, n: u64) {
    let i0 = global_thread_index() * 8;
    if i0 >= n {
        return;
    }
    let valid = (n - i0).min(8) as usize;
    let (x, q) = (x.add(i0 as usize), q.add(i0 as usize));
    let mut v = [0f32; 8];
    unroll8!(i => {
        if i < valid {
            v[i] = x.add(i).read();
        }
    });
    let codes = encode8(format, &v);
    unroll8!(i => {
        if i < valid {
            q.add(i).write((codes >> (8 * i)) as u8);
        }
    });
}

#[inline(always)]
unsafe fn decode_chunk(format: Fp8Format, q: *const u8, y: *mut f32, n: u64) {
    let i0 = global_thread_index() * 8;
    let mut i = i0;
    while i < n && i < i0 + 8 {
        y.add(i as usize).write(format.decode(q.add(i as usize).read()));
        i += 1;
    }
}

macro_rules! entry {
    ($($encode:ident, $decode:ident: $format:ident;)*) => {$(
        /// Encodes `p.n` f32 values at `x` into codes at `q`, one thread
        /// per 8.
        ///
        /// # Safety
        /// Both buffers hold `p.n` elements.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $encode(x: *const f32, q: *mut u8, p: CodecParams) {
            encode_chunk(Fp8Format::$format, x, q, p.n)
        }

        /// Decodes `p.n` codes at `q` into f32 at `y`, one thread per 8.
        ///
        /// # Safety
        /// Both buffers hold `p.n` elements.
        #[no_mangle]
        pub unsafe extern "ptx-kernel" fn $decode(q: *const u8, y: *mut f32, p: CodecParams) {
            decode_chunk(Fp8Format::$format, q, y, p.n)
        }
    )*};
}

// The entry points of `crate::abi`'s list, which also names them for the host.
codec_kernels!(entry);
