//! The table of `docs/bad-inputs.md`, generated from the real `Display`
//! impls: every row is a real call with a bad input (except the four GPU-only
//! rows, built from the variant the GPU path returns), and this test fails
//! when the committed table differs from what the code says now. Refresh it
//! with `BLESS=1 cargo test -p quant-host --test bad_input_table`.

mod common;

use common::*;
use quant_host::checkpoint::{quantize, CheckpointError, QuantizeOptions, Selector, Silent};
use quant_host::cpu;
use quant_host::{
    BlockConfig, Device, Fp8Format, GemmConfig, GemmShape, GroupSize, MatrixShape, QuantError, RmsNormConfig,
    ScaleLayout, Tensor, TokenGroupConfig,
};
use safetensors::Dtype;
use std::path::Path;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bad-inputs.md");
const BEGIN: &str = "<!-- BEGIN GENERATED TABLE (quant-host/tests/bad_input_table.rs) -->";
const END: &str = "<!-- END GENERATED TABLE -->";

/// One row: entry point, bad input, the test(s) that prove it, the message.
struct Row {
    entry: &'static str,
    input: &'static str,
    tests: &'static str,
    message: String,
}

fn api<T: std::fmt::Debug>(r: Result<T, QuantError>) -> String {
    r.expect_err("a bad input was accepted").to_string()
}

fn tool(dir: &Path, r: Result<quant_host::checkpoint::QuantizeReport, CheckpointError>) -> String {
    let message = r.expect_err("a bad checkpoint was accepted").to_string();
    message.replace(&dir.display().to_string(), "<dir>")
}

fn api_rows() -> Vec<Row> {
    let shape = MatrixShape::new(2, 64).unwrap();
    let x = vec![1.0f32; 128];
    let tg = |cfg: TokenGroupConfig| cpu::per_token_group_quant_fp8(&x, shape, &cfg, &mut [0; 128], &mut [0.0; 2]);
    let bl = |cfg: BlockConfig| cpu::per_block_quant_fp8(&x, shape, &cfg, &mut [0; 128], &mut [0.0; 1]);
    let none = Tensor::<f32>::from_vec(vec![], MatrixShape::new(0, 0).unwrap()).unwrap();
    let q1 = Tensor::from_vec(vec![0x38u8; 256], MatrixShape::new(1, 256).unwrap()).unwrap();
    let q2 = Tensor::from_vec(vec![0x38u8; 128], MatrixShape::new(1, 128).unwrap()).unwrap();
    let s2 = Tensor::from_vec(vec![1f32; 2], MatrixShape::new(1, 2).unwrap()).unwrap();
    let s1 = Tensor::from_vec(vec![1f32; 1], MatrixShape::new(1, 1).unwrap()).unwrap();
    let strided = Tensor::from_vec(vec![0x38u8; 2 * 256 + 256], MatrixShape::strided(2, 256, 512).unwrap()).unwrap();
    let huge_a = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 31, 0).unwrap()).unwrap();
    let oom_a = Tensor::<u8>::from_vec(vec![], MatrixShape::new(1 << 23, 0).unwrap()).unwrap();
    let max_rows = Tensor::<f32>::from_vec(vec![], MatrixShape::strided(usize::MAX, 0, 0).unwrap()).unwrap();
    let tma = TokenGroupConfig { layout: ScaleLayout::ColMajorTmaAligned, ..Default::default() };
    let gemm = GemmConfig::default();
    let odd = Tensor::from_vec(vec![1f32; 2 * 7], MatrixShape::new(2, 7).unwrap()).unwrap();
    let row = Tensor::from_vec(vec![1f32; 8], MatrixShape::new(1, 8).unwrap()).unwrap();
    let long = Tensor::from_vec(vec![1f32; 32769], MatrixShape::new(1, 32769).unwrap()).unwrap();
    let too_many = Tensor::from_vec(vec![3u32], MatrixShape::new(1, 1).unwrap()).unwrap();
    let zero_eps = RmsNormConfig { norm_eps: 0.0, ..RmsNormConfig::default() };
    vec![
        Row {
            entry: "`GroupSize::try_from`",
            input: "group size not 32, 64 or 128 (here 48)",
            tests:
                "cpu_bad_input::group_size_must_be_32_64_or_128, cpu_bad_input_props::shapes_strides_and_group_sizes",
            message: api(GroupSize::try_from(48usize)),
        },
        Row {
            entry: "per_block_quant_fp8, dequantize_block, fp8q",
            input: "a block side of 0",
            tests: "cpu_bad_input::block_sides_must_be_positive, *_bad_input_props (ZeroSide)",
            message: api(bl(BlockConfig { block_rows: 0, ..Default::default() })),
        },
        Row {
            entry: "both quantizers, both dequantizers",
            input: "fp8_max NaN, inf, <= 0",
            tests: "cpu_bad_input::fp8_max_must_be_finite_positive_and_at_most_the_format_max, *_bad_input_props",
            message: api(tg(TokenGroupConfig { fp8_max: Some(f32::NAN), ..Default::default() })),
        },
        Row {
            entry: "both quantizers, both dequantizers",
            input: "fp8_max above the format's largest finite (449 for e4m3fn)",
            tests: "as above",
            message: api(tg(TokenGroupConfig { fp8_max: Some(449.0), ..Default::default() })),
        },
        Row {
            entry: "both quantizers, both dequantizers",
            input: "fp8_max above 240 for e4m3fnuz",
            tests: "as above",
            message: api(tg(TokenGroupConfig {
                format: Fp8Format::E4M3Fnuz,
                fp8_max: Some(241.0),
                ..Default::default()
            })),
        },
        Row {
            entry: "both quantizers, both dequantizers",
            input: "eps 0, negative, NaN or inf",
            tests: "cpu_bad_input::eps_must_be_finite_and_positive, *_bad_input_props",
            message: api(tg(TokenGroupConfig { eps: 0.0, ..Default::default() })),
        },
        Row {
            entry: "both quantizers, both dequantizers",
            input: "eps so small that eps / fp8_max is subnormal (1e-40)",
            tests: "cpu_bad_input::eps_whose_zero_group_scale_underflows_is_rejected",
            message: api(tg(TokenGroupConfig { eps: 1e-40, ..Default::default() })),
        },
        Row {
            entry: "`MatrixShape::strided`",
            input: "row stride smaller than K",
            tests: "cpu_bad_input::row_stride_smaller_than_k, cpu_bad_input_props::shapes_strides_and_group_sizes",
            message: api(MatrixShape::strided(2, 64, 63)),
        },
        Row {
            entry: "every function taking slices or tensors",
            input: "an input buffer shorter than its shape (x, w, a, b, data)",
            tests: "cpu_bad_input::short_input_buffers, *_bad_input_props",
            message: api(cpu::per_token_group_quant_fp8(
                &x[..100],
                shape,
                &Default::default(),
                &mut [0; 128],
                &mut [0.0; 2],
            )),
        },
        Row {
            entry: "every function taking slices or tensors",
            input: "an output buffer of the wrong length (q, scales, out, c, a_scales, b_scales)",
            tests: "cpu_bad_input::wrong_output_lengths_of_the_quantizers, *_bad_input_props",
            message: api(cpu::per_token_group_quant_fp8(&x, shape, &Default::default(), &mut [0; 128], &mut [0.0; 3])),
        },
        Row {
            entry: "`Tensor::from_vec`, `Tensor::from_cuda`",
            input: "a buffer shorter than the shape",
            tests: "*_bad_input_props (ShortX / ShortW)",
            message: api(Tensor::from_vec(vec![0u8; 3], MatrixShape::new(2, 2).unwrap())),
        },
        Row {
            entry: "mm_fp8_blockscale(_into)",
            input: "A and B with different K",
            tests: "cpu_bad_input::wrong_lengths_and_output_type_of_the_gemm, *_bad_input_props (KMismatch)",
            message: api(Device::Cpu.mm_fp8_blockscale(&q1, &s2, &q2, &s1, &gemm)),
        },
        Row {
            entry: "mm_fp8_blockscale(_into)",
            input: "a strided (non-dense) A, B or C",
            tests: "*_bad_input_props (Strided)",
            message: api(Device::Cpu.mm_fp8_blockscale(&strided, &s2, &q1, &s1, &gemm)),
        },
        Row {
            entry: "mm_fp8_blockscale_into",
            input: "C of the wrong shape, or of another type than cfg.output",
            tests: "*_bad_input_props (CShape, CType)",
            message: api(Device::Cpu.mm_fp8_blockscale_into(
                &q1,
                &s2,
                &q1,
                &s2,
                &gemm,
                &mut quant_host::GemmTensor::F32(Device::Cpu.zeros(MatrixShape::new(1, 1).unwrap()).unwrap()),
            )),
        },
        Row {
            entry: "`MatrixShape::new`, `GemmShape::new`",
            input: "rows x cols past the address space",
            tests: "cpu_bad_input::sizes_past_the_address_space_are_errors, cpu_bad_input_props",
            message: api(GemmShape::new(usize::MAX, 2, 2)),
        },
        Row {
            entry: "per_token_group_quant_fp8 (Cpu and Cuda)",
            input: "M = usize::MAX, K = 0, TMA-aligned scales (M rounded up to 4 overflows)",
            tests: "cpu_bad_input_props::former_panics_are_typed_errors, gpu_bad_input::sizes_past_the_limits",
            message: api(Device::Cpu.per_token_group_quant_fp8(&max_rows, &tma)),
        },
        Row {
            entry: "`Device::zeros`, allocating entry points",
            input: "an output of more bytes than the address space (C of 2^31 x 2^31 bf16)",
            tests: "cpu_bad_input_props::former_panics_are_typed_errors, gpu_bad_input::sizes_past_the_limits",
            message: api(Device::Cpu.mm_fp8_blockscale(&huge_a, &none, &huge_a, &none, &gemm)),
        },
        Row {
            entry: "`Device::Cpu` allocating entry points",
            input: "an output the host cannot allocate (C of 2^23 x 2^23 bf16, 128 TiB)",
            tests: "cpu_bad_input_props::former_panics_are_typed_errors",
            message: api(Device::Cpu.mm_fp8_blockscale(&oom_a, &none, &oom_a, &none, &gemm)),
        },
        Row {
            entry: "every `Device::Cuda` entry point (GPU-only row)",
            input: "a host tensor passed to a GPU device",
            tests: "gpu_bad_input::tensors_on_the_wrong_device_or_context",
            message: QuantError::WrongDevice { what: "x", expected: "cuda:0".into(), actual: "cpu".into() }.to_string(),
        },
        Row {
            entry: "every `Device::Cpu` entry point",
            input: "a GPU tensor passed to the CPU device (GPU-only row)",
            tests: "gpu_bad_input::tensors_on_the_wrong_device_or_context",
            message: QuantError::WrongDevice { what: "x", expected: "cpu".into(), actual: "cuda:0".into() }.to_string(),
        },
        Row {
            entry: "every GPU launcher, `Gpu::encode_fp8`/`decode_fp8`",
            input: "a device buffer from another CUDA context (GPU-only row)",
            tests: "gpu_bad_input::tensors_on_the_wrong_device_or_context",
            message: QuantError::WrongDevice {
                what: "x",
                expected: "cuda:0".into(),
                actual: "cuda:0 (another context)".into(),
            }
            .to_string(),
        },
        Row {
            entry: "`Device::cuda`, `Gpu::new`",
            input: "no CUDA driver on the machine",
            tests: "fp8q_cli::device_flag_and_bench_without_gpu",
            message: QuantError::NoDriver.to_string(),
        },
        Row {
            entry: "`Device::silu_mul_per_token_group_quant_fp8*`",
            input: "an input with an odd number of columns (not `[M, 2N]`)",
            tests: "quant-host fused::tests::plans_check_shapes",
            message: api(Device::Cpu.silu_mul_per_token_group_quant_fp8(&odd, &TokenGroupConfig::default())),
        },
        Row {
            entry: "`Device::rms_norm_per_token_group_quant_fp8*`",
            input: "norm_eps NaN, inf or <= 0",
            tests: "quant-host fused::tests::plans_check_shapes",
            message: api(Device::Cpu.rms_norm_per_token_group_quant_fp8(&row, &row, None, &zero_eps)),
        },
        Row {
            entry: "`Device::rms_norm_per_token_group_quant_fp8*`",
            input: "rows longer than 32768 (one CTA holds a row)",
            tests: "quant-host fused::tests::plans_check_shapes",
            message: api(Device::Cpu.rms_norm_per_token_group_quant_fp8(&long, &long, None, &RmsNormConfig::default())),
        },
        Row {
            entry: "the masked MoE entry points (CPU; the GPU kernel clamps)",
            input: "masked_m[e] above the expert's M_max rows",
            tests: "cpu_fused::masked_counts_above_the_expert_rows_are_errors",
            message: api(Device::Cpu.per_token_group_quant_fp8_masked(&odd, &too_many, &TokenGroupConfig::default())),
        },
        Row {
            entry: "the `*_packed_ue8m0` entry points",
            input: "packed UE8M0 scales with scale_mode float",
            tests: "cpu_fused::packed_needs_ue8m0_scales",
            message: api(Device::Cpu.per_token_group_quant_fp8_packed_ue8m0(&row, None, &TokenGroupConfig::default())),
        },
    ]
}

fn tool_rows() -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |input: &Path, opts: &QuantizeOptions| quantize(input, &d.join("out"), opts, &Device::Cpu, &Silent);
    let default = QuantizeOptions::default();
    let mut rows = Vec::new();
    let mut row = |input: &'static str, tests: &'static str, message: String| {
        rows.push(Row { entry: "fp8q quantize", input, tests, message });
    };

    let garbage = d.join("garbage.safetensors");
    let mut bytes = 40u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\": this is not json at all............");
    std::fs::write(&garbage, &bytes).unwrap();
    row(
        "a safetensors header that is not JSON",
        "checkpoint::rejects_bad_header, fuzz safetensors_header",
        tool(d, run(&garbage, &default)),
    );
    std::fs::write(&garbage, b"abc").unwrap();
    row(
        "a file shorter than the 8-byte header length",
        "checkpoint::rejects_bad_header",
        tool(d, run(&garbage, &default)),
    );

    let m = d.join("m.safetensors");
    write_file(&m, &small_model());
    let full = std::fs::read(&m).unwrap();
    let cut = d.join("cut.safetensors");
    std::fs::write(&cut, &full[..full.len() - 3]).unwrap();
    row("a truncated file", "checkpoint::rejects_truncated_file_naming_the_tensor", tool(d, run(&cut, &default)));
    let long = d.join("long.safetensors");
    std::fs::write(&long, [&full[..], b"xyz"].concat()).unwrap();
    row("bytes after the last tensor", "fuzz safetensors_header", tool(d, run(&long, &default)));

    let mut tensors = small_model();
    tensors.push(float("model.layers.1.self_attn.q_b_proj.weight", Dtype::F8_E4M3, &[128, 128], 20));
    let fp8 = d.join("fp8.safetensors");
    write_file(&fp8, &tensors);
    row(
        "a selected weight already in fp8 (or another non-float dtype)",
        "checkpoint::rejects_wrong_dtype_for_selected_weight",
        tool(d, run(&fp8, &default)),
    );
    let layernorm = QuantizeOptions { selector: Selector::new(Some("layernorm"), None).unwrap(), ..Default::default() };
    row(
        "a 1-D tensor selected by --pattern",
        "checkpoint::rejects_one_dimensional_tensor_selected_by_explicit_pattern",
        tool(d, run(&m, &layernorm)),
    );
    let mut tensors = small_model();
    tensors.push(float("model.layers.0.self_attn.o_proj.weight_scale_inv", Dtype::F32, &[1, 2], 30));
    let coll = d.join("coll.safetensors");
    write_file(&coll, &tensors);
    row(
        "a `*_scale_inv` name that already exists",
        "checkpoint::rejects_scale_name_collision",
        tool(d, run(&coll, &default)),
    );
    let bad_block =
        QuantizeOptions { block: BlockConfig { block_rows: 0, ..Default::default() }, ..Default::default() };
    row(
        "--block with a 0 side (any invalid quantizer option)",
        "checkpoint::rejects_bad_pattern_and_block_size",
        tool(d, run(&m, &bad_block)),
    );
    row(
        "a --pattern that is not a regex",
        "checkpoint::rejects_bad_pattern_and_block_size",
        Selector::new(Some("a(b"), None).unwrap_err().to_string(),
    );

    // Sharded folders.
    let folder = |name: &str| {
        let f = d.join(name);
        write_folder(
            &f,
            &[
                ("model-00001-of-00002.safetensors", small_model()),
                ("model-00002-of-00002.safetensors", vec![float("model.extra.weight", Dtype::BF16, &[16, 64], 9)]),
            ],
        );
        f
    };
    let edit_index = |f: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let p = f.join("model.safetensors.index.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let f = folder("missing");
    std::fs::remove_file(f.join("model-00002-of-00002.safetensors")).unwrap();
    row("an index naming a shard that does not exist", "checkpoint::rejects_missing_shard", tool(d, run(&f, &default)));
    let f = folder("escape");
    edit_index(&f, &|v| v["weight_map"]["lm_head.weight"] = "../elsewhere.safetensors".into());
    row(
        "an index naming a path outside the folder",
        "checkpoint::rejects_index_naming_a_path_outside_the_folder, fuzz index_json",
        tool(d, run(&f, &default)),
    );
    let f = folder("notjson");
    std::fs::write(f.join("model.safetensors.index.json"), b"{not json").unwrap();
    row("an index that is not JSON", "fuzz index_json", tool(d, run(&f, &default)));
    let f = folder("nomap");
    std::fs::write(f.join("model.safetensors.index.json"), b"{\"metadata\": {}}").unwrap();
    row("an index without a weight_map", "fuzz index_json", tool(d, run(&f, &default)));
    let f = folder("moved");
    edit_index(&f, &|v| v["weight_map"]["model.extra.weight"] = "model-00001-of-00002.safetensors".into());
    row(
        "an index placing a tensor in a shard that lacks it",
        "checkpoint::rejects_tensor_missing_from_its_shard",
        tool(d, run(&f, &default)),
    );
    let f = folder("unlisted");
    edit_index(&f, &|v| {
        v["weight_map"].as_object_mut().unwrap().remove("lm_head.weight");
    });
    row("a shard tensor the index does not list", "bad_input_table (this table)", tool(d, run(&f, &default)));
    let f = folder("empty");
    std::fs::remove_file(f.join("model.safetensors.index.json")).unwrap();
    row(
        "a folder with neither an index nor model.safetensors",
        "bad_input_table (this table)",
        tool(d, run(&f, &default)),
    );

    // Output.
    std::fs::create_dir_all(d.join("out")).unwrap();
    row(
        "an existing output without --force",
        "checkpoint::refuses_to_overwrite_without_force_and_replaces_with_it",
        tool(d, run(&m, &default)),
    );
    let force = QuantizeOptions { overwrite: true, ..Default::default() };
    row(
        "--force with the output equal to the input",
        "checkpoint::refuses_output_that_overlaps_input",
        tool(d, quantize(&m, &m, &force, &Device::Cpu, &Silent)),
    );
    std::fs::write(d.join("out").join("keep.txt"), b"keep").unwrap();
    row(
        "--force onto an output of another kind (a folder for a file, a device, a link, a folder fp8q did not write)",
        "checkpoint::force_replaces_only_an_output_of_the_same_kind",
        tool(d, run(&m, &force)),
    );
    let first = quant_host::checkpoint::output::Staging::prepare(&d.join("claimed"), &m, false, false).unwrap();
    row(
        "a second run to an output a first run is writing",
        "checkpoint::the_output_name_is_claimed_when_a_run_starts",
        tool(d, quantize(&m, &d.join("claimed"), &default, &Device::Cpu, &Silent)),
    );
    drop(first);

    // Issue 16: nothing lost silently (each to an output that does not exist).
    let fresh = |input: &Path, opts: &QuantizeOptions| {
        quantize(input, &d.join("fresh.safetensors"), opts, &Device::Cpu, &Silent)
    };
    let mut tensors = small_model();
    let mut values = values(3, 300 * 260, 0.05);
    values[130 * 260 + 7] = f32::NAN;
    tensors[2].data = values.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
    let nan = d.join("nan.safetensors");
    write_file(&nan, &tensors);
    row(
        "a NaN or infinity in a selected weight (without --allow-nonfinite)",
        "checkpoint::refuses_nonfinite_weights_unless_allowed",
        tool(d, fresh(&nan, &default)),
    );
    let int8 = d.join("int8.safetensors");
    write_file(&int8, &[float("model.layers.0.mlp.up_proj.weight", Dtype::I8, &[64, 64], 4)]);
    row(
        "nothing selected for quantization (GPTQ, int8, a --pattern matching nothing, an empty weight_map)",
        "checkpoint::refuses_to_quantize_nothing",
        tool(d, fresh(&int8, &default)),
    );
    let dup = d.join("dup.safetensors");
    let header = br#"{"a.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    std::fs::write(&dup, [&(header.len() as u64).to_le_bytes()[..], header, &[0; 8]].concat()).unwrap();
    row(
        "a tensor name defined twice in a header",
        "checkpoint::rejects_duplicate_tensor_names",
        tool(d, fresh(&dup, &default)),
    );
    let f = folder("fifo");
    assert!(std::process::Command::new("mkfifo").arg(f.join("pipe")).status().unwrap().success());
    row(
        "a FIFO, socket or device among the extra files (checked before anything is written)",
        "checkpoint::extra_files_are_checked_before_anything_is_written",
        tool(d, fresh(&f, &default)),
    );
    let f = folder("linkdir");
    std::os::unix::fs::symlink(".", f.join("loop")).unwrap();
    row(
        "a link to a folder among the extra files (outside the checkpoint, or a loop)",
        "checkpoint::extra_files_are_checked_before_anything_is_written",
        tool(d, fresh(&f, &default)),
    );
    let f = folder("dangling");
    std::os::unix::fs::symlink(f.join("gone"), f.join("dangling")).unwrap();
    row(
        "a dangling link among the extra files",
        "checkpoint::extra_files_are_checked_before_anything_is_written",
        tool(d, fresh(&f, &default)),
    );
    let f = folder("shardfolder");
    std::fs::remove_file(f.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::create_dir(f.join("model-00002-of-00002.safetensors")).unwrap();
    row(
        "a folder or FIFO where the index names a shard",
        "checkpoint::a_shard_that_is_not_a_file_is_named_as_such",
        tool(d, fresh(&f, &default)),
    );
    let shrinking = d.join("shrinking.safetensors");
    write_file(&shrinking, &small_model());
    let shard = quant_host::checkpoint::reader::Shard::open(&shrinking).unwrap();
    std::fs::File::options().write(true).open(&shrinking).unwrap().set_len(100).unwrap();
    row(
        "a shard truncated by another process while it is read",
        "checkpoint::a_shard_that_shrinks_while_read_is_a_typed_error",
        shard.read("lm_head.weight").unwrap_err().to_string().replace(&d.display().to_string(), "<dir>"),
    );
    row(
        "a tensor the host cannot allocate memory for (2^62 bytes)",
        "checkpoint::host_allocation_failure_is_a_typed_error",
        quant_host::checkpoint::memory::try_filled(1usize << 62, 0u8, &m, "tensor `w`")
            .unwrap_err()
            .to_string()
            .replace(&d.display().to_string(), "<dir>"),
    );
    rows
}

fn table() -> String {
    let mut text = String::from(
        "| # | Entry point | Bad input | Proved by | Message the user sees |\n| --- | --- | --- | --- | --- |\n",
    );
    for (i, r) in api_rows().into_iter().chain(tool_rows()).enumerate() {
        // One line, and a double-backtick code span (messages quote names in `...`).
        let message = r.message.replace('\n', "\\n").replace('|', "\\|");
        text += &format!("| {} | {} | {} | {} | `` {} `` |\n", i + 1, r.entry, r.input, r.tests, message);
    }
    text
}

#[test]
fn the_documented_table_is_what_the_code_says() {
    let doc = std::fs::read_to_string(DOC).expect("docs/bad-inputs.md");
    let (head, rest) = doc.split_once(BEGIN).expect("BEGIN marker");
    let (_, tail) = rest.split_once(END).expect("END marker");
    let fresh = format!("{head}{BEGIN}\n{}{END}{tail}", table());
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(DOC, &fresh).unwrap();
        return;
    }
    assert!(
        doc == fresh,
        "docs/bad-inputs.md is stale: run `BLESS=1 cargo test -p quant-host --test bad_input_table`\n{}",
        table()
    );
}
