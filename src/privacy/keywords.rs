//! JOIN / STOP / HELP keywords.
//!
//! A keyword is the whole message, trimmed, compared case-insensitively
//! with Unicode lowercasing (`ARRÊT` = `arrêt`): "please stop sending me
//! the stop times" is a message, not a STOP. The default lists follow the
//! carrier set (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) plus common
//! words in other languages.

use std::collections::HashMap;

use super::{PrivacyConfig, PrivacyError};

/// Default join keywords.
pub const DEFAULT_JOIN: &[&str] = &["JOIN", "START", "YES", "UNSTOP", "OUI", "JA", "SÍ"];
/// Default stop keywords.
pub const DEFAULT_STOP: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "REVOKE",
    "ARRET",
    "ARRÊT",
    "STOPP",
    "ALTO",
    "PARAR",
    "BASTA",
    "BAJA",
    "ABMELDEN",
];
/// Default help keywords.
pub const DEFAULT_HELP: &[&str] = &["HELP", "INFO", "AIDE", "HILFE", "AYUDA", "AIUTO", "AJUDA"];

/// A message that is a keyword rather than content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyword {
    /// Join (or re-join after STOP).
    Join,
    /// Stop relaying and sending.
    Stop,
    /// Ask what this is and what is stored.
    Help,
}

impl Keyword {
    /// The name stored in consent records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Keyword::Join => "join",
            Keyword::Stop => "stop",
            Keyword::Help => "help",
        }
    }
}

/// Longest keyword accepted in the configuration (and so the longest
/// message worth lowercasing).
const MAX_KEYWORD_CHARS: usize = 32;

/// The configured keyword lists, ready for matching.
#[derive(Debug, Clone)]
pub struct Keywords {
    words: HashMap<String, Keyword>,
    /// The first join keyword as configured, for replies ("reply JOIN").
    join_word: String,
    /// The first stop keyword as configured.
    stop_word: String,
}

/// The form messages and keywords are compared in.
fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

impl Keywords {
    /// Builds the matcher from `[privacy]`; a keyword in two lists, an
    /// empty or overlong one, or an empty join/stop list is a config error.
    pub fn from_config(config: &PrivacyConfig) -> Result<Keywords, PrivacyError> {
        let mut words = HashMap::new();
        let lists = [
            (
                "privacy.join_keywords",
                Keyword::Join,
                &config.join_keywords,
            ),
            (
                "privacy.stop_keywords",
                Keyword::Stop,
                &config.stop_keywords,
            ),
            (
                "privacy.help_keywords",
                Keyword::Help,
                &config.help_keywords,
            ),
        ];
        for (key, kind, list) in lists {
            if list.is_empty() && kind != Keyword::Help {
                return Err(PrivacyError::Config {
                    key,
                    message: "must list at least one keyword".into(),
                });
            }
            for word in list {
                let folded = fold(word);
                if folded.is_empty() || folded.chars().count() > MAX_KEYWORD_CHARS {
                    return Err(PrivacyError::Config {
                        key,
                        message: format!(
                            "{word:?}: a keyword has 1 to {MAX_KEYWORD_CHARS} characters"
                        ),
                    });
                }
                if let Some(other) = words.insert(folded, kind) {
                    if other != kind {
                        return Err(PrivacyError::Config {
                            key,
                            message: format!("{word:?} is also a {} keyword", other.as_str()),
                        });
                    }
                }
            }
        }
        let first = |list: &[String]| {
            list.first()
                .map(|w| w.trim().to_owned())
                .unwrap_or_default()
        };
        Ok(Keywords {
            words,
            join_word: first(&config.join_keywords),
            stop_word: first(&config.stop_keywords),
        })
    }

    /// The keyword `text` is, if the whole trimmed message is one.
    pub fn classify(&self, text: &str) -> Option<Keyword> {
        let trimmed = text.trim();
        // Longer than any keyword can be (4 bytes per char at most): skip
        // the lowercasing of long messages.
        if trimmed.len() > MAX_KEYWORD_CHARS * 4 {
            return None;
        }
        self.words.get(&fold(trimmed)).copied()
    }

    /// The join word to quote in replies (the first configured).
    pub fn join_word(&self) -> &str {
        &self.join_word
    }

    /// The stop word to quote in replies (the first configured).
    pub fn stop_word(&self) -> &str {
        &self.stop_word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw() -> Keywords {
        Keywords::from_config(&PrivacyConfig::default()).unwrap()
    }

    #[test]
    fn whole_message_any_case() {
        let k = kw();
        assert_eq!(k.classify("STOP"), Some(Keyword::Stop));
        assert_eq!(k.classify("  stop \n"), Some(Keyword::Stop));
        assert_eq!(k.classify("Stop"), Some(Keyword::Stop));
        assert_eq!(k.classify("arrêt"), Some(Keyword::Stop));
        assert_eq!(k.classify("ARRÊT"), Some(Keyword::Stop));
        assert_eq!(k.classify("Stopp"), Some(Keyword::Stop));
        assert_eq!(k.classify("join"), Some(Keyword::Join));
        assert_eq!(k.classify("sí"), Some(Keyword::Join));
        assert_eq!(k.classify("Hilfe"), Some(Keyword::Help));
        assert_eq!(k.classify("please stop"), None);
        assert_eq!(k.classify("stop!"), None);
        assert_eq!(k.classify(""), None);
        assert_eq!(k.classify(&"stop ".repeat(1000)), None);
        assert_eq!(k.join_word(), "JOIN");
        assert_eq!(k.stop_word(), "STOP");
    }

    #[test]
    fn configured_lists_replace_the_defaults() {
        let config = PrivacyConfig {
            join_keywords: vec!["Anmelden".into()],
            stop_keywords: vec!["Tschüss".into()],
            help_keywords: vec![],
            ..PrivacyConfig::default()
        };
        let k = Keywords::from_config(&config).unwrap();
        assert_eq!(k.classify("ANMELDEN"), Some(Keyword::Join));
        assert_eq!(k.classify("TSCHÜSS"), Some(Keyword::Stop));
        assert_eq!(k.classify("STOP"), None);
        assert_eq!(k.classify("HELP"), None);
    }

    #[test]
    fn conflicting_or_empty_lists_are_config_errors() {
        let both = PrivacyConfig {
            join_keywords: vec!["go".into()],
            stop_keywords: vec!["GO".into()],
            ..PrivacyConfig::default()
        };
        let e = Keywords::from_config(&both).unwrap_err().to_string();
        assert!(
            e.contains("privacy.stop_keywords") && e.contains("join"),
            "{e}"
        );
        let empty = PrivacyConfig {
            stop_keywords: vec![],
            ..PrivacyConfig::default()
        };
        assert!(Keywords::from_config(&empty).is_err());
        let blank = PrivacyConfig {
            help_keywords: vec!["  ".into()],
            ..PrivacyConfig::default()
        };
        assert!(Keywords::from_config(&blank).is_err());
    }
}
