//! A quantizer call checked once: a config and a shape become a plan that
//! holds the validated scale parameters and every derived size (group
//! count, scale shape and length), so the paths that run it (`Device`, the
//! CPU path, the GPU launches, the benchmark) neither validate again nor
//! compute a size their own way. The `cpu::*_quant_fp8` functions that take
//! a config make their plan first and run the `*_planned` version.

use crate::config::{BlockConfig, GroupSize, ScaleParams, TokenGroupConfig};
use crate::error::{QuantError, Result};
use crate::shape::MatrixShape;
use quant_kernels::ScaleLayout;

/// A checked `per_token_group_quant_fp8` of one input shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenGroupPlan {
    config: TokenGroupConfig,
    params: ScaleParams,
    input: MatrixShape,
    group_size: GroupSize,
    layout: ScaleLayout,
    groups: usize,
    scale_shape: MatrixShape,
}

impl TokenGroupPlan {
    /// Validates `cfg` (eps, fp8_max) and derives the sizes for an input of
    /// `input`'s shape; errors where a size does not fit the address space.
    pub fn new(cfg: &TokenGroupConfig, input: MatrixShape) -> Result<Self> {
        let params = cfg.params()?;
        let groups = input.cols().div_ceil(cfg.group_size.get());
        // Checked: rounding M up to a multiple of 4 (TMA-aligned layout)
        // overflows for M near usize::MAX, a valid shape when K == 0.
        let stored_rows = cfg
            .layout
            .checked_len(input.rows() as u64, 1)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or(QuantError::TooLarge("scale rows"))?;
        // Described in storage order: `groups x padded rows` for the
        // column-major layouts.
        let scale_shape = match cfg.layout {
            ScaleLayout::RowMajor => MatrixShape::new(input.rows(), groups)?,
            ScaleLayout::ColMajor | ScaleLayout::ColMajorTmaAligned => MatrixShape::new(groups, stored_rows)?,
        };
        Ok(Self { config: *cfg, params, input, group_size: cfg.group_size, layout: cfg.layout, groups, scale_shape })
    }

    /// The config the plan was made from.
    pub fn config(&self) -> TokenGroupConfig {
        self.config
    }

    /// The validated scalar parameters.
    pub fn params(&self) -> ScaleParams {
        self.params
    }

    /// The input's shape (row stride included).
    pub fn input(&self) -> MatrixShape {
        self.input
    }

    /// Elements per group.
    pub fn group_size(&self) -> GroupSize {
        self.group_size
    }

    /// Layout of the scales.
    pub fn layout(&self) -> ScaleLayout {
        self.layout
    }

    /// Groups per row: `ceil(K / group_size)`.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The codes' shape: `[M, K]`, dense.
    pub fn codes_shape(&self) -> MatrixShape {
        // Cannot fail: `input` already checked `rows * cols`.
        MatrixShape::new(self.input.rows(), self.input.cols()).unwrap_or(self.input)
    }

    /// The scales' shape in storage order: `[M, G]` row-major, `[G, M]`
    /// column-major, `[G, align(M, 4)]` TMA-aligned.
    pub fn scale_shape(&self) -> MatrixShape {
        self.scale_shape
    }

    /// Checks the lengths of an input, codes and scales buffer against the plan.
    pub fn check_buffers(&self, x: usize, q: usize, scales: usize) -> Result<()> {
        self.input.check_buffer("x", x)?;
        exact("q", self.input.numel(), q)?;
        exact("scales", self.scale_shape.numel(), scales)
    }

    /// Whether there is nothing to compute (`M == 0` or `K == 0`). Then the
    /// codes and the scales hold no element either (in every layout), so
    /// skipping the launch leaves no output element unwritten: what lets
    /// `Device` allocate the outputs without zeroing them.
    pub fn is_empty(&self) -> bool {
        self.input.numel() == 0
    }
}

/// A checked `per_block_quant_fp8` of one weight shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockPlan {
    config: BlockConfig,
    params: ScaleParams,
    input: MatrixShape,
    block_rows: usize,
    block_cols: usize,
    scale_shape: MatrixShape,
}

impl BlockPlan {
    /// Validates `cfg` (block sides, eps, fp8_max) and derives the scale
    /// grid `[ceil(N / block_rows), ceil(K / block_cols)]`.
    pub fn new(cfg: &BlockConfig, input: MatrixShape) -> Result<Self> {
        let params = cfg.params()?;
        let scale_shape =
            MatrixShape::new(input.rows().div_ceil(cfg.block_rows), input.cols().div_ceil(cfg.block_cols))?;
        Ok(Self { config: *cfg, params, input, block_rows: cfg.block_rows, block_cols: cfg.block_cols, scale_shape })
    }

    /// The config the plan was made from.
    pub fn config(&self) -> BlockConfig {
        self.config
    }

    /// The validated scalar parameters.
    pub fn params(&self) -> ScaleParams {
        self.params
    }

    /// The weight's shape (row stride included).
    pub fn input(&self) -> MatrixShape {
        self.input
    }

    /// Block height and width.
    pub fn block(&self) -> (usize, usize) {
        (self.block_rows, self.block_cols)
    }

    /// The codes' shape: `[N, K]`, dense.
    pub fn codes_shape(&self) -> MatrixShape {
        // Cannot fail: `input` already checked `rows * cols`.
        MatrixShape::new(self.input.rows(), self.input.cols()).unwrap_or(self.input)
    }

    /// The scale grid, row-major.
    pub fn scale_shape(&self) -> MatrixShape {
        self.scale_shape
    }

    /// Checks the lengths of a weight, codes and scales buffer against the plan.
    pub fn check_buffers(&self, w: usize, q: usize, scales: usize) -> Result<()> {
        self.input.check_buffer("w", w)?;
        exact("q", self.input.numel(), q)?;
        exact("scales", self.scale_shape.numel(), scales)
    }

    /// Whether there is nothing to compute (`N == 0` or `K == 0`).
    pub fn is_empty(&self) -> bool {
        self.input.numel() == 0
    }
}

/// Errors unless a buffer holds exactly `expected` elements (a longer one
/// almost always means the caller passed the wrong shape).
fn exact(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(QuantError::BufferLength { what, expected: expected as u64, actual: actual as u64 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_group_scale_shapes_follow_the_layout() {
        let x = MatrixShape::strided(5, 300, 320).unwrap();
        let cfg = |layout| TokenGroupConfig { layout, ..TokenGroupConfig::default() };
        let rows = TokenGroupPlan::new(&cfg(ScaleLayout::RowMajor), x).unwrap();
        assert_eq!((rows.groups(), rows.scale_shape()), (3, MatrixShape::new(5, 3).unwrap()));
        let col = TokenGroupPlan::new(&cfg(ScaleLayout::ColMajor), x).unwrap();
        assert_eq!(col.scale_shape(), MatrixShape::new(3, 5).unwrap());
        let tma = TokenGroupPlan::new(&cfg(ScaleLayout::ColMajorTmaAligned), x).unwrap();
        assert_eq!(tma.scale_shape(), MatrixShape::new(3, 8).unwrap());
        assert_eq!(tma.scale_shape().numel() as u64, ScaleLayout::ColMajorTmaAligned.len(5, 3));
        assert_eq!(rows.codes_shape(), MatrixShape::new(5, 300).unwrap());
        assert!(tma.check_buffers(4 * 320 + 300, 1500, 24).is_ok());
        assert!(matches!(tma.check_buffers(4 * 320 + 300, 1500, 15), Err(QuantError::BufferLength { .. })));
        assert!(matches!(tma.check_buffers(4 * 320 + 299, 1500, 24), Err(QuantError::BufferLength { .. })));
    }

    #[test]
    fn empty_plans_have_no_output_element() {
        // `Device` leaves the outputs unset where the kernel writes them, and
        // an empty plan launches nothing: its outputs must hold nothing.
        for layout in ScaleLayout::ALL {
            for group_size in GroupSize::ALL {
                let cfg = TokenGroupConfig { layout, group_size, ..TokenGroupConfig::default() };
                for (m, k, stride) in [(0, 7168, 7168), (0, 5, 9), (5, 0, 0), (5, 0, 3), (1, 0, 0)] {
                    let plan = TokenGroupPlan::new(&cfg, MatrixShape::strided(m, k, stride).unwrap()).unwrap();
                    let what = format!("{layout:?} {group_size:?} {m} x {k} (stride {stride})");
                    assert!(plan.is_empty(), "{what}");
                    assert_eq!(plan.codes_shape().extent(), 0, "{what}: codes");
                    assert_eq!(plan.scale_shape().extent(), 0, "{what}: scales");
                }
                // And a plan with any element is not empty (it launches).
                assert!(!TokenGroupPlan::new(&cfg, MatrixShape::new(1, 1).unwrap()).unwrap().is_empty());
            }
        }
    }

    #[test]
    fn bad_configs_and_huge_shapes_are_errors() {
        let x = MatrixShape::new(2, 128).unwrap();
        let bad_eps = TokenGroupConfig { eps: 0.0, ..TokenGroupConfig::default() };
        assert!(matches!(TokenGroupPlan::new(&bad_eps, x), Err(QuantError::InvalidEps(_))));
        let bad_block = BlockConfig { block_rows: 0, ..BlockConfig::default() };
        assert!(matches!(BlockPlan::new(&bad_block, x), Err(QuantError::InvalidBlock { .. })));
        // M near usize::MAX is a valid shape with K == 0; its TMA rounding is not.
        let tall = MatrixShape::new(usize::MAX, 0).unwrap();
        let tma = TokenGroupConfig { layout: ScaleLayout::ColMajorTmaAligned, ..TokenGroupConfig::default() };
        assert!(matches!(TokenGroupPlan::new(&tma, tall), Err(QuantError::TooLarge(_))));
        assert!(TokenGroupPlan::new(&TokenGroupConfig::default(), tall).unwrap().is_empty());
    }

    #[test]
    fn block_scale_grid_covers_the_tails() {
        let w = MatrixShape::new(130, 7000).unwrap();
        let plan = BlockPlan::new(&BlockConfig::default(), w).unwrap();
        assert_eq!(plan.scale_shape(), MatrixShape::new(2, 55).unwrap());
        assert_eq!(plan.block(), (128, 128));
        assert!(plan.check_buffers(130 * 7000, 130 * 7000, 110).is_ok());
        assert!(plan.check_buffers(130 * 7000, 130 * 7000, 111).is_err());
    }
}
