//! Stand-in for the router's config types until branch `router` lands
//! (same names and serde shape as the contract). Deleted at the merge.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub sticky: bool,
    pub sticky_days: u32,
    pub rule: Vec<PrefixRule>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            sticky: true,
            sticky_days: 30,
            rule: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixRule {
    pub prefix: String,
    pub modems: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    pub recipients_per_month: Option<u32>,
    pub jitter_ms: Option<[u64; 2]>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    #[serde(flatten)]
    pub default: Limits,
    pub sim: BTreeMap<String, Limits>,
}
