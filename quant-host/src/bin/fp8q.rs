//! `fp8q`: quantize safetensors checkpoints to DeepSeek-style block-scale fp8.
//!
//! A thin command line over `quant_host::checkpoint`; run with no arguments
//! for a self-contained demonstration on a synthetic checkpoint.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quant_host::checkpoint::{self, demo, DeviceChoice, Durability, Progress, QuantizeOptions, Selector};
use quant_host::{BlockConfig, Device, Fp8Format, ScaleMode};
use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Quantize safetensors checkpoints to block-scale fp8 (DeepSeek-V3/V4 style).
///
/// With no subcommand, writes a small synthetic checkpoint with DeepSeek-V4-Pro
/// projection shapes to a temporary folder, quantizes it, verifies it and
/// prints a report.
#[derive(Parser, Debug)]
#[command(name = "fp8q", version)]
struct Cli {
    /// Where the kernels run: the GPU when there is one (auto), or forced.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto, global = true)]
    device: DeviceArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Quantize the linear weights of a checkpoint; copy everything else.
    Quantize(QuantizeArgs),
    /// Compare a quantized checkpoint with its original; exit 2 on a failure.
    Verify {
        /// The original checkpoint (file or folder).
        original: PathBuf,
        /// The quantized checkpoint (file or folder).
        quantized: PathBuf,
    },
    /// Benchmark the kernels (needs a GPU), or with --checkpoint the quantize
    /// job against a plain copy of the same files (any device).
    Bench(BenchCmd),
    /// Write a synthetic bf16 checkpoint (DeepSeek-V4-Pro projection shapes)
    /// for trying or measuring `quantize`: about 98 MiB per copy.
    Synthesize {
        /// The folder to create.
        output: PathBuf,
        /// How many copies of the synthetic layers (44 make about 4 GiB).
        #[arg(long, default_value_t = 1)]
        copies: usize,
    },
}

#[derive(clap::Args, Debug)]
struct BenchCmd {
    /// Instead of the kernels: synthesize a checkpoint, then time `quantize`
    /// (on --device) against reading and copying the same files, and report
    /// peak memory.
    #[arg(long)]
    checkpoint: bool,
    /// With --checkpoint: copies of the synthetic layers (44 make 4.34 GB).
    #[arg(long, default_value_t = 44)]
    copies: usize,
    /// With --checkpoint: where to work (default: the temporary folder); needs
    /// free space for about twice the checkpoint.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// With --checkpoint: time only `quantize --no-sync` (by default both
    /// modes are timed, the flushed one first).
    #[arg(long)]
    no_sync: bool,
    #[command(flatten)]
    kernels: quant_host::bench::BenchArgs,
}

#[derive(clap::Args, Debug)]
struct QuantizeArgs {
    /// A .safetensors file, or a folder with model.safetensors.index.json and
    /// shards (or with model.safetensors).
    input: PathBuf,
    /// The output file or folder (same kind as the input).
    output: PathBuf,
    /// Regex over tensor names selecting the weights to quantize. Default:
    /// names ending in `.weight`, minus embeddings, norms, the LM head and MoE
    /// routers (see --exclude), 2-D tensors only. An explicit pattern drops
    /// the default exclude, and every tensor it selects must be a 2-D
    /// BF16/F16/F32 matrix.
    #[arg(long)]
    pattern: Option<String>,
    /// Regex over tensor names to leave unquantized. Default (with the default
    /// pattern): `embed|norm|(^|\.)(lm_head|head|output|gate|router|wte|wpe)\.weight$`.
    #[arg(long)]
    exclude: Option<String>,
    /// fp8 format of the codes.
    #[arg(long, default_value = "e4m3fn", value_parser = fp8_format_parser())]
    format: Fp8Format,
    /// Block scales as any f32 (float) or as powers of two (ue8m0, DeepSeek-V4).
    #[arg(long, value_enum, default_value_t = ScaleArg::Float)]
    scale_fmt: ScaleArg,
    /// Block size: `N` for NxN blocks or `NxK`.
    #[arg(long, default_value = "128", value_parser = parse_block)]
    block_size: (usize, usize),
    /// Replace OUT if it exists and is of the same kind: a regular file for a
    /// file, a folder that fp8q wrote (or an empty one) for a folder.
    #[arg(long)]
    force: bool,
    /// Quantize weights that hold NaN or infinity instead of refusing them.
    /// The blocks holding such values get non-finite scales (so all their
    /// values dequantize to NaN), the report lists each such weight, and
    /// `fp8q verify` fails them.
    #[arg(long)]
    allow_nonfinite: bool,
    /// Do not flush the output to disk (fsync) before renaming it into place.
    /// The output still appears complete or not at all to other programs,
    /// and the run is faster by the time the disk takes to write it; but a
    /// power cut or an operating-system crash before the OS writes it back
    /// (Linux: within about 30 s) can leave it missing or truncated.
    #[arg(long)]
    no_sync: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    Auto,
    Cpu,
    Gpu,
}

/// `--format`: the names of `Fp8Format`'s one name table, as possible values.
fn fp8_format_parser() -> impl clap::builder::TypedValueParser<Value = Fp8Format> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Fp8Format::ALL.map(|f| f.name()))
        .try_map(|name: String| Fp8Format::from_name(&name).ok_or_else(|| format!("unknown fp8 format `{name}`")))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScaleArg {
    Float,
    Ue8m0,
}

fn parse_block(s: &str) -> Result<(usize, usize), String> {
    let parse = |v: &str| match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{v}` is not a positive block size")),
    };
    match s.split_once(['x', 'X']) {
        Some((r, c)) => Ok((parse(r)?, parse(c)?)),
        None => parse(s).map(|n| (n, n)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = checkpoint::interrupt::remove_on_signals() {
        eprintln!("fp8q: warning: cannot handle signals ({e}): an interrupted run may leave a .fp8q-* folder");
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A signal removes the run's files under it, which makes it fail:
            // that failure is not news, the signal handler reports.
            checkpoint::interrupt::wait_if_interrupted();
            eprintln!("fp8q: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes in one line, each said once: most of the
/// library's errors already quote their cause (`path: No such file`), and
/// printing the chain as well would repeat it.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let choice = match cli.device {
        DeviceArg::Auto => DeviceChoice::Auto,
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Gpu => DeviceChoice::Gpu,
    };
    match cli.command {
        None => default_run(choice),
        Some(Command::Quantize(args)) => {
            let selected = checkpoint::select_device(choice)?;
            eprintln!("fp8q: device {} ({})", checkpoint::device_choice::describe(&selected.device), selected.reason);
            let opts = QuantizeOptions {
                block: BlockConfig {
                    format: args.format,
                    scale_mode: match args.scale_fmt {
                        ScaleArg::Float => ScaleMode::Float,
                        ScaleArg::Ue8m0 => ScaleMode::Ue8m0,
                    },
                    block_rows: args.block_size.0,
                    block_cols: args.block_size.1,
                    ..BlockConfig::default()
                },
                selector: Selector::new(args.pattern.as_deref(), args.exclude.as_deref())?,
                overwrite: args.force,
                allow_nonfinite: args.allow_nonfinite,
                durability: if args.no_sync { Durability::NoSync } else { Durability::Synced },
            };
            let bar = Bar::new("quantize");
            let report = checkpoint::quantize(&args.input, &args.output, &opts, &selected.device, &bar)?;
            drop(bar);
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Verify { original, quantized }) => {
            let bar = Bar::new("verify");
            let report = checkpoint::verify(&original, &quantized, &bar)?;
            drop(bar);
            print!("{report}");
            Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Some(Command::Bench(args)) if args.checkpoint => {
            let selected = checkpoint::select_device(choice)?;
            eprintln!("fp8q: device {} ({})", checkpoint::device_choice::describe(&selected.device), selected.reason);
            let modes = checkpoint::bench::modes(args.no_sync);
            let report = checkpoint::bench::run(args.copies, args.dir.as_deref(), &selected.device, modes)?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench(BenchCmd { kernels: args, .. })) => match Device::best_available() {
            // A benchmark that cannot run is a failure, not an empty report:
            // a script timing the kernels must not mistake it for a result.
            (Device::Cpu, why) => {
                let why = why.map(|e| format!(": {e}")).unwrap_or_default();
                anyhow::bail!(
                    "the kernel benchmark needs a GPU (`fp8q bench --checkpoint` times the quantize job on any \
                     device), and none is usable{why}"
                )
            }
            (Device::Cuda(_), _) => {
                quant_host::bench::run(&args)?;
                Ok(ExitCode::SUCCESS)
            }
        },
        Some(Command::Synthesize { output, copies }) => {
            let start = std::time::Instant::now();
            quant_host::checkpoint::demo::write_synthetic_checkpoint_copies(&output, copies)?;
            println!(
                "wrote a synthetic checkpoint ({copies} copies) to {} in {:.1} s",
                output.display(),
                start.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `fp8q` with no arguments: the synthetic end-to-end run.
fn default_run(choice: DeviceChoice) -> anyhow::Result<ExitCode> {
    let selected = checkpoint::select_device(choice)?;
    let work = tempfile::Builder::new().prefix("fp8q-demo-").tempdir().context("creating a temporary folder")?;
    // The synthetic checkpoint is ~100 MB: removed on SIGINT/SIGTERM/SIGHUP too.
    let _remove_on_signal = checkpoint::interrupt::remove_folder_on_signal(work.path().to_path_buf());
    println!("fp8q: no arguments, so a demonstration on a synthetic checkpoint (see `fp8q --help`)");
    println!("  device:    {} ({})", checkpoint::device_choice::describe(&selected.device), selected.reason);
    println!(
        "  checkpoint: {} tensors in 2 shards under {} (removed afterwards)",
        demo::SYNTHETIC.len(),
        work.path().display()
    );
    let bar = Bar::new("quantize");
    let report = demo::run_demo(work.path(), &selected.device, &bar)?;
    drop(bar);
    print!("{}", report.quantize);
    print!("{}", report.verify);
    Ok(if report.verify.passed() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// A progress bar over input bytes, on stderr, hidden when stderr is not a terminal.
struct Bar {
    bar: ProgressBar,
    tensors: Cell<u64>,
    done: Cell<u64>,
}

impl Bar {
    fn new(what: &'static str) -> Self {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(0), target).with_prefix(what);
        let style = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {decimal_bytes}/{decimal_total_bytes} ({decimal_bytes_per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Self { bar, tensors: Cell::new(0), done: Cell::new(0) }
    }
}

impl Progress for Bar {
    fn begin(&self, tensors: u64, bytes: u64) {
        self.tensors.set(tensors);
        self.bar.set_length(bytes);
    }

    fn tensor_done(&self, name: &str, bytes: u64) {
        self.done.set(self.done.get() + 1);
        self.bar.inc(bytes);
        self.bar.set_message(format!("{}/{} {name}", self.done.get(), self.tensors.get()));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
