//! `model.safetensors.index.json` parsing on arbitrary bytes: `Index::read`
//! returns a typed error or an index whose shard names are plain file names,
//! and whose rewritten form (what fp8q writes) parses back to the same map.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quant_host::checkpoint::index::Index;

mod scratch;

fuzz_target!(|data: &[u8]| {
    let path = scratch::dir().join("model.safetensors.index.json");
    std::fs::write(&path, data).expect("write scratch file");
    let Ok(index) = Index::read(&path) else { return };
    for shard in index.shard_files() {
        let p = std::path::Path::new(&shard);
        assert!(p.components().count() == 1 && p.file_name().is_some(), "{shard:?} escapes the folder");
    }
    let text = index.rewritten(index.weight_map(), 12345);
    let again = scratch::dir().join("rewritten.index.json");
    std::fs::write(&again, &text).expect("write scratch file");
    let reread = Index::read(&again).expect("the rewritten index parses");
    assert_eq!(reread.weight_map(), index.weight_map());
});
