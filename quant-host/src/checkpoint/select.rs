//! Which tensors are quantized: a regular expression over tensor names.
//!
//! The default selects the linear projections of DeepSeek-style checkpoints
//! (HF names such as `model.layers.0.self_attn.q_a_proj.weight` or
//! `mlp.experts.3.gate_proj.weight`, and the reference-code names such as
//! `layers.0.attn.wkv.weight` or `ffn.experts.3.w1.weight`) and leaves alone
//! what DeepSeek's own fp8 checkpoints keep in high precision: embeddings,
//! norms, the LM head and the MoE router (`mlp.gate.weight`, not `gate_proj`).

use super::error::{CheckpointError, Result};
use regex::Regex;

/// Default include pattern: every tensor whose name ends in `.weight`.
pub const DEFAULT_PATTERN: &str = r"\.weight$";

/// Default exclude pattern, applied after [`DEFAULT_PATTERN`]: embeddings
/// (`embed_tokens`, `embed`, `wte`, ...), anything with `norm` in its name,
/// the LM head (`lm_head`, `head`) and MoE routers (`gate`, `router` as the
/// last module name; `gate_proj` is a projection and stays selected).
pub const DEFAULT_EXCLUDE: &str = r"embed|norm|(^|\.)(lm_head|head|output|gate|router|wte|wpe)\.weight$";

/// A name filter: `include` minus `exclude`.
///
/// With the default selection, a matching tensor that is not 2-D is copied
/// unchanged (biases and norms named `*.weight` in some models). With an
/// explicit pattern the user asked for exactly those tensors, so one that
/// cannot be quantized is an error instead of a silent copy.
#[derive(Clone, Debug)]
pub struct Selector {
    include: Regex,
    exclude: Option<Regex>,
    explicit: bool,
}

impl Selector {
    /// The default selection ([`DEFAULT_PATTERN`] minus [`DEFAULT_EXCLUDE`],
    /// 2-D tensors only).
    pub fn projections() -> Self {
        Self::build(None, None).unwrap_or_else(|_| unreachable!("the default patterns are valid regexes"))
    }

    /// A selection from user patterns. `pattern: None` keeps the default
    /// include and exclude (and `exclude` replaces the default exclude);
    /// `pattern: Some(p)` selects exactly what `p` matches minus `exclude`,
    /// and makes every selected tensor that is not a 2-D float matrix an error.
    pub fn new(pattern: Option<&str>, exclude: Option<&str>) -> Result<Self> {
        Self::build(pattern, exclude)
    }

    fn build(pattern: Option<&str>, exclude: Option<&str>) -> Result<Self> {
        let compile = |p: &str| {
            Regex::new(p)
                .map_err(|source| CheckpointError::Pattern { pattern: p.to_string(), source: Box::new(source) })
        };
        let include = compile(pattern.unwrap_or(DEFAULT_PATTERN))?;
        let exclude = match (pattern, exclude) {
            (_, Some(e)) => Some(compile(e)?),
            (None, None) => Some(compile(DEFAULT_EXCLUDE)?),
            (Some(_), None) => None,
        };
        Ok(Self { include, exclude, explicit: pattern.is_some() })
    }

    /// Whether `name` is selected by name (the plan also looks at its shape).
    pub fn matches(&self, name: &str) -> bool {
        self.include.is_match(name) && !self.exclude.as_ref().is_some_and(|e| e.is_match(name))
    }

    /// Whether the include pattern was given by the user.
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// A one-line description for reports.
    pub fn describe(&self) -> String {
        match &self.exclude {
            Some(e) => format!("/{}/ minus /{}/", self.include.as_str(), e.as_str()),
            None => format!("/{}/", self.include.as_str()),
        }
    }
}

impl Default for Selector {
    fn default() -> Self {
        Self::projections()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_selects_projections_only() {
        let s = Selector::projections();
        for name in [
            "model.layers.0.self_attn.q_a_proj.weight",
            "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
            "model.layers.3.mlp.experts.17.gate_proj.weight",
            "model.layers.3.mlp.shared_experts.down_proj.weight",
            "layers.0.attn.wkv.weight",
            "layers.0.attn.wo_b.weight",
            "layers.0.ffn.experts.0.w1.weight",
        ] {
            assert!(s.matches(name), "{name} should be selected");
        }
        for name in [
            "model.embed_tokens.weight",
            "embed.weight",
            "lm_head.weight",
            "head.weight",
            "model.norm.weight",
            "model.layers.0.input_layernorm.weight",
            "layers.0.attn.kv_norm.weight",
            "model.layers.3.mlp.gate.weight",
            "layers.3.ffn.gate.weight",
            "model.layers.3.mlp.gate.e_score_correction_bias",
            "model.layers.0.self_attn.q_a_proj.bias",
        ] {
            assert!(!s.matches(name), "{name} should not be selected");
        }
        assert!(!s.is_explicit());
    }

    #[test]
    fn explicit_pattern_drops_default_exclude() {
        let s = Selector::new(Some(r"norm\.weight$"), None).unwrap();
        assert!(s.matches("model.norm.weight"));
        assert!(s.is_explicit());
        let s = Selector::new(Some(r"\.weight$"), Some("experts")).unwrap();
        assert!(s.matches("model.embed_tokens.weight"));
        assert!(!s.matches("mlp.experts.1.up_proj.weight"));
    }

    #[test]
    fn bad_pattern_is_an_error() {
        let err = Selector::new(Some("(unclosed"), None).unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
    }
}
