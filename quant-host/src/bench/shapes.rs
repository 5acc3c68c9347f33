//! The shapes of `docs/shapes.md` that the benchmark covers.

/// Every weight `(N, K)` of the DeepSeek-V3, V4-Flash and V4-Pro projections,
/// each once.
pub const WEIGHTS: &[(usize, usize)] = &[
    (2112, 7168),
    (576, 7168),
    (1536, 7168),
    (24576, 1536),
    (32768, 512),
    (7168, 16384),
    (7168, 2048),
    (36864, 7168),
    (7168, 18432),
    (4096, 7168),
    (1024, 4096),
    (512, 4096),
    (32768, 1024),
    (4096, 8192),
    (8192, 1024),
    (2048, 4096),
    (4096, 2048),
    (512, 7168),
    (65536, 1536),
    (8192, 1536),
    (3072, 7168),
    (7168, 3072),
];

/// Every activation width K of those projections, plus the tail K = 7000.
pub const ACTIVATION_K: &[usize] = &[512, 1024, 1536, 2048, 3072, 4096, 7000, 7168, 8192, 16384, 18432];

/// Token counts: 1-128 decode, 2048 and up prefill.
pub const TOKENS: &[usize] = &[1, 8, 64, 128, 512, 2048, 4096, 16384];
