// The `wgmma` and operand-fence instructions of one warpgroup, for its
// m64n128 and m64n64 accumulator fragments (64 and 32 f32 registers).

/// `"{}, {}, ..., {}"`: one positional `asm!` operand per index given.
macro_rules! operand_list {
    (@sep $x:literal) => {
        ", {}"
    };
    ($first:literal $($rest:literal)*) => {
        concat!("{}", $(operand_list!(@sep $rest)),*)
    };
}

/// Defines `$name(d, desc_a, desc_b, accumulate)`: `d (+)= A * B^T` for one
/// warpgroup with `wgmma.mma_async` `$shape`, E4M3FN operands from shared
/// memory (descriptors) and the f32 accumulators `d` (indices `$i`) in the
/// fragment layout. `accumulate == 0` overwrites `d` instead of adding.
macro_rules! wgmma_e4m3 {
    ($(#[$doc:meta])* $name:ident, $shape:literal, $n:literal, [$($i:literal)+]) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// All 128 threads of the warpgroup execute it convergently, the
        /// descriptors point at 1024-byte-aligned 128B-swizzled tiles the CTA
        /// owns, and `wgmma_fence` ran since the registers were last written
        /// by other code.
        #[inline(always)]
        unsafe fn $name(d: &mut [f32; $n], desc_a: u64, desc_b: u64, accumulate: u32) {
            asm!(
                "{{",
                ".reg .pred p;",
                "setp.ne.b32 p, {acc}, 0;",
                concat!(
                    "wgmma.mma_async.sync.aligned.",
                    $shape,
                    ".f32.e4m3.e4m3 {{",
                    operand_list!($($i)+),
                    "}}, {da}, {db}, p, 1, 1;"
                ),
                "}}",
                $(inout(reg32) d[$i],)+
                da = in(reg64) desc_a,
                db = in(reg64) desc_b,
                acc = in(reg32) accumulate,
                options(nostack),
            );
        }
    };
}

/// Defines `$name(d)`: ties the accumulator registers `d` to this point of
/// the program, so code that reads or writes them cannot move across it
/// (CUTLASS's `warpgroup_fence_operand`). Emits only a PTX comment.
macro_rules! fence_operands {
    ($name:ident, $n:literal, [$($i:literal)+]) => {
        #[doc = concat!("Fences the ", stringify!($n), " accumulators of a fragment; see `fence_operands!`.")]
        #[inline(always)]
        fn $name(d: &mut [f32; $n]) {
            // SAFETY: a comment; the operands are only named.
            unsafe {
                asm!(
                    concat!("// wgmma operands ", operand_list!($($i)+)),
                    $(inout(reg32) d[$i],)+
                    options(nomem, nostack, preserves_flags),
                )
            };
        }
    };
}

wgmma_e4m3!(
    /// m64n128k32: a warpgroup's 64 x 128 tile.
    wgmma_m64n128k32,
    "m64n128k32",
    64,
    [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63]
);
wgmma_e4m3!(
    /// m64n64k32: half of B's 128-column tile (the 32 accumulators of the
    /// m64n64 fragment), so two halves can take turns.
    wgmma_m64n64k32,
    "m64n64k32",
    32,
    [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]
);
fence_operands!(fence_operands, 64, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63]);
fence_operands!(fence_operands32, 32, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31]);
