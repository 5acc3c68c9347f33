//! Timing with CUDA events: warm-up, then the median of repetitions.

use crate::error::Result;
use cudarc::driver::sys::{CUevent_flags, CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::CudaStream;
use std::sync::Arc;

/// Median milliseconds of one call of `f`, each call bracketed by events.
pub fn median_ms(
    stream: &Arc<CudaStream>,
    warmup: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let ctx = stream.context();
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        let end = ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        start.record(stream)?;
        f()?;
        end.record(stream)?;
        times.push(start.elapsed_ms(&end)? as f64);
    }
    Ok(median(times))
}

/// Median microseconds per launch when `per_graph` launches of `f` are
/// captured in one CUDA graph and the graph is replayed: the launch cost a
/// serving stack pays, without the host's launch overhead.
pub fn graph_us_per_launch(
    stream: &Arc<CudaStream>,
    per_graph: usize,
    reps: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    f()?; // load the function outside the capture
    stream.synchronize()?;
    stream.begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
    let captured = (0..per_graph).try_for_each(|_| f());
    let graph = stream.end_capture(CUgraphInstantiate_flags(0))?;
    captured?;
    let Some(graph) = graph else {
        return Ok(f64::NAN);
    };
    graph.upload()?;
    let ms = median_ms(stream, 3, reps, || Ok(graph.launch()?))?;
    Ok(ms * 1e3 / per_graph as f64)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
