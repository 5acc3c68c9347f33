//! The `fp8q` checkpoint tool as a library: quantize the linear weights of a
//! safetensors checkpoint to block-scale fp8 the way DeepSeek ships V3/V4
//! (fp8 `weight` + f32 `weight_scale_inv`, 128x128 blocks), and verify the
//! result against the original.
//!
//! The binary `fp8q` is a thin command-line layer over [`quantize`](fn@quantize),
//! [`verify`](fn@verify) and [`demo::run_demo`]; tests call these directly.
//!
//! One concept per file: [`select`] (which names), [`plan`] (what happens to
//! each tensor), [`reader`] / [`writer`] (safetensors in and out, streamed),
//! [`index`] and [`config_json`] (the JSON around the shards), [`output`]
//! (all-or-nothing output), [`durability`] (flushed to disk or not,
//! `--no-sync`), [`pipeline`] (the reader, quantizer, writer and sync
//! threads), [`staging`] (their buffers), [`quantizer_stage`] and
//! [`quantizer_stage_gpu`] (the quantizer stage on the chosen device),
//! [`report`] (results), [`bench`](mod@bench) (quantize against a copy).

pub mod bench;
pub mod config_json;
pub mod demo;
pub mod device_choice;
pub mod durability;
pub mod error;
pub mod extras;
pub mod finite;
pub mod index;
pub mod interrupt;
pub mod memory;
pub mod output;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod quantize;
pub mod quantizer_stage;
pub mod quantizer_stage_gpu;
pub mod reader;
pub mod report;
pub mod select;
pub mod source;
pub mod staging;
pub mod verify;
pub mod writer;

pub use device_choice::{select_device, DeviceChoice, SelectedDevice};
pub use durability::Durability;
pub use error::{CheckpointError, Result};
pub use progress::{Progress, Silent};
pub use quantize::{quantize, QuantizeOptions};
pub use report::{ErrorStats, Outcome, QuantizeReport, TensorCheck, VerifyReport};
pub use select::Selector;
pub use verify::verify;
