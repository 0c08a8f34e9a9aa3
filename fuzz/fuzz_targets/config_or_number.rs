//! Fuzz target: the `[privacy]`/`[retention]` sections and anything a
//! client or a modem may hand the privacy layer as a number, a handle or a
//! keyword must never panic, and a masked number never shows more than
//! four digits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smsgate::privacy::{
    handle::is_handle, mask, normalize, Consent, Keywords, PrivacyConfig, Region, RetentionConfig,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(privacy) = toml::from_str::<PrivacyConfig>(text) {
        let _ = privacy.validate();
        if let Ok(consent) = Consent::new(&privacy, &RetentionConfig::default()) {
            let _ = consent.keywords().classify(text);
        }
    }
    if let Ok(retention) = toml::from_str::<RetentionConfig>(text) {
        let _ = retention.validate();
        let _ = retention.plan(&PrivacyConfig::default(), i64::MAX);
        let _ = retention.plan(&PrivacyConfig::default(), i64::MIN);
    }
    let region = Region::parse(Some("DE")).unwrap_or_default();
    let _ = normalize(text, region);
    let _ = normalize(text, Region::NONE);
    let _ = is_handle(text);
    if let Ok(k) = Keywords::from_config(&PrivacyConfig::default()) {
        let _ = k.classify(text);
    }
    let masked = mask(text);
    if !text.starts_with("sms:") {
        assert!(masked.chars().filter(char::is_ascii_digit).count() <= 4);
    }
});
