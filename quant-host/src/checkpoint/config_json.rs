//! The `quantization_config` entry of `config.json`, DeepSeek style, which
//! vLLM and SGLang read to pick the block-scale fp8 kernels.

use crate::config::BlockConfig;
use quant_kernels::{Fp8Format, ScaleMode};
use serde_json::{json, Map, Value};

/// The `quantization_config` for weights quantized with `cfg`:
/// `{"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
/// "weight_block_size": [BN, BK]}` plus `"scale_fmt": "ue8m0"` for
/// power-of-two scales. `fmt` is `"e4m3fnuz"` for the AMD format, which
/// DeepSeek's configs never name.
pub fn quantization_config(cfg: &BlockConfig) -> Value {
    let mut value = json!({
        "quant_method": "fp8",
        "fmt": fmt_name(cfg.format),
        "activation_scheme": "dynamic",
        "weight_block_size": [cfg.block_rows, cfg.block_cols],
    });
    if cfg.scale_mode == ScaleMode::Ue8m0 {
        if let Value::Object(m) = &mut value {
            m.insert("scale_fmt".into(), Value::from("ue8m0"));
        }
    }
    value
}

/// The `fmt` string of a format.
pub fn fmt_name(format: Fp8Format) -> &'static str {
    match format {
        Fp8Format::E4M3Fn => "e4m3",
        Fp8Format::E4M3Fnuz => "e4m3fnuz",
    }
}

/// `config.json` with `quantization_config` set (replacing any existing one,
/// which is returned so the caller can say so). Key order is kept.
pub fn with_quantization_config(config: &str, cfg: &BlockConfig) -> Result<(String, Option<Value>), String> {
    let mut document: Map<String, Value> = match serde_json::from_str(config) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("invalid JSON: {e}")),
    };
    let previous = document.insert("quantization_config".into(), quantization_config(cfg));
    let mut text = serde_json::to_string_pretty(&Value::Object(document)).map_err(|e| e.to_string())?;
    text.push('\n');
    Ok((text, previous))
}

/// The block size recorded in a `config.json`, if any.
pub fn block_size(config: &Value) -> Option<(usize, usize)> {
    let size = config.get("quantization_config")?.get("weight_block_size")?.as_array()?;
    match size.as_slice() {
        [r, c] => Some((r.as_u64()?.try_into().ok()?, c.as_u64()?.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deepseek_shape() {
        let v = quantization_config(&BlockConfig::default());
        assert_eq!(
            v,
            json!({"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]})
        );
        let v = quantization_config(&BlockConfig { scale_mode: ScaleMode::Ue8m0, ..Default::default() });
        assert_eq!(v["scale_fmt"], "ue8m0");
    }

    #[test]
    fn keeps_other_keys_in_order() {
        let (text, previous) = with_quantization_config(r#"{"z": 1, "a": {"b": 2}}"#, &BlockConfig::default()).unwrap();
        assert!(previous.is_none());
        let z = text.find("\"z\"").unwrap();
        let a = text.find("\"a\"").unwrap();
        assert!(z < a, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(block_size(&v), Some((128, 128)));
        assert!(with_quantization_config("[1]", &BlockConfig::default()).is_err());
    }
}
