//! The kernel benchmark behind `fp8q bench`. Placeholder: the benchmark is
//! being written separately and will replace this module's body.

/// Options of `fp8q bench`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark on the GPU.
pub fn run(_args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("the kernel benchmark is not built yet")
}
