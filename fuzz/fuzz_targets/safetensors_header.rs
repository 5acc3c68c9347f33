//! The safetensors reader on arbitrary bytes: `Shard::open` must return a
//! typed error or a shard whose every tensor can be read (bytes in range,
//! quantizable dtypes convertible), never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quant_host::checkpoint::reader::{is_quantizable, HostData, Shard};

mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::dir().join("input.safetensors");
    std::fs::write(&path, data).expect("write scratch file");
    let Ok(shard) = Shard::open(&path) else { return };
    let _ = shard.user_metadata();
    let mut total = 0u64;
    for name in shard.names() {
        let info = shard.info(name).expect("a listed tensor has info");
        let bytes = shard.read(name).expect("a validated tensor's bytes are in the file");
        assert_eq!(bytes.len(), info.data_offsets.1 - info.data_offsets.0);
        total += bytes.len() as u64;
        if is_quantizable(info.dtype) {
            let values = HostData::from_le_bytes(info.dtype, &bytes, &path, name).expect("whole elements");
            let numel: usize = info.shape.iter().product();
            assert_eq!(values.len(), numel);
        }
    }
    assert_eq!(total, shard.data_len());
});
