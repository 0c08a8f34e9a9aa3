//! Pseudonymous handles: what the bus shows instead of a phone number.
//!
//! `sms:` + the first 80 bits of HMAC-SHA-256(secret, E.164 number),
//! base32 (RFC 4648, lowercase, no padding: 16 characters). The same
//! number always gets the same handle, so a bridge can keep a stable
//! identity for a person; without the secret nobody can compute the
//! handle of a number they guess, and a handle does not reveal the number.
//! The daemon maps handles back through the store's `handles` table,
//! written when a number is first seen ([`Handles`]).
//!
//! The secret is 32 random bytes generated at first start in the state
//! directory (mode 0600). Losing it changes every handle; leaking it lets
//! someone confirm guessed numbers, so a file any other user could read is
//! refused.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::number::{normalize, Region};
use super::PrivacyError;
use crate::store::Store;

/// Bytes of secret.
pub const SECRET_LEN: usize = 32;
/// Bytes of MAC kept: 10 bytes = 80 bits = 16 base32 characters. Enough
/// that two of the world's numbers colliding is negligible (birthday bound
/// near 2^40 numbers).
const HANDLE_BYTES: usize = 10;
/// The prefix of every handle.
pub const PREFIX: &str = "sms:";
/// Characters after the prefix.
pub const HANDLE_CHARS: usize = 16;
/// The default name of the secret file in the state directory.
pub const SECRET_FILE: &str = "handle.key";

/// The keyed hash that turns numbers into handles.
#[derive(Clone)]
pub struct HandleKey {
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("HandleKey(..)")
    }
}

impl HandleKey {
    /// A key from known bytes (tests, or a secret kept elsewhere).
    pub fn from_bytes(secret: [u8; SECRET_LEN]) -> HandleKey {
        HandleKey { secret }
    }

    /// Loads the secret at `path`, creating it (32 random bytes, mode 0600,
    /// atomically) when missing. A file of the wrong size, not a regular
    /// file, or readable by group or others is refused with an error that
    /// says what to do.
    pub fn load_or_create(path: &Path) -> Result<HandleKey, PrivacyError> {
        match load(path) {
            Err(PrivacyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                create(path)?;
                load(path)
            }
            other => other,
        }
    }

    /// The handle of an E.164 number (normalise it first: a different
    /// spelling is a different handle).
    pub fn handle(&self, e164: &str) -> String {
        // HMAC pads a key shorter than the 64-byte SHA-256 block with zeros
        // (RFC 2104 section 2), so a zero-padded block is the same key and
        // `new` cannot fail, unlike `new_from_slice`.
        let mut block = [0u8; 64];
        block[..SECRET_LEN].copy_from_slice(&self.secret);
        let mut mac = <Hmac<Sha256> as Mac>::new(&block.into());
        mac.update(e164.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + HANDLE_CHARS);
        out.push_str(PREFIX);
        out.push_str(
            &data_encoding::BASE32_NOPAD
                .encode(&digest[..HANDLE_BYTES])
                .to_ascii_lowercase(),
        );
        out
    }
}

/// Whether `s` looks like a handle (`sms:` + 16 lowercase base32 chars).
pub fn is_handle(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == HANDLE_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivacyError + '_ {
    move |source| PrivacyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn load(path: &Path) -> Result<HandleKey, PrivacyError> {
    let bad = |message: String| PrivacyError::Secret {
        path: path.to_owned(),
        message,
    };
    // O_NOFOLLOW: a symlink planted in the state directory must not make
    // us use (or report on) another file.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "is readable or writable by group or others (mode {:o}); anyone who reads it can \
             match phone numbers to handles: run `chmod 600 {}`",
            meta.mode() & 0o777,
            path.display()
        )));
    }
    if meta.len() != SECRET_LEN as u64 {
        return Err(bad(format!(
            "has {} bytes, expected {SECRET_LEN}; restore it from a backup (or delete it to \
             start over: every handle will change)",
            meta.len()
        )));
    }
    let mut secret = [0u8; SECRET_LEN];
    file.read_exact(&mut secret).map_err(io(path))?;
    Ok(HandleKey { secret })
}

/// Writes a new secret: to a private temporary file first, then linked
/// into place, so a crash never leaves a short file and two starting
/// processes cannot both win (the loser keeps the winner's secret).
fn create(path: &Path) -> Result<(), PrivacyError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let mut secret = [0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut tmp = PathBuf::from(path);
    tmp.set_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut f: File = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()
    })();
    let result = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = fs::remove_file(&tmp);
    result.map_err(io(path))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!(path = %path.display(), "created the handle secret");
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// A number and its handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// E.164.
    pub number: String,
    /// `sms:...`.
    pub handle: String,
}

/// Handles backed by the store: computes them, records the mapping, maps
/// them back.
#[derive(Debug, Clone)]
pub struct Handles {
    key: HandleKey,
    region: Region,
    store: Store,
}

impl Handles {
    /// Handles for `store`, normalising national numbers with `region`.
    pub fn new(key: HandleKey, region: Region, store: Store) -> Handles {
        Handles { key, region, store }
    }

    /// The pure key.
    pub fn key(&self) -> &HandleKey {
        &self.key
    }

    /// The handle of a number, recording the mapping so it can be resolved
    /// later (call it when a number is first seen: inbound sender,
    /// outbound recipient).
    pub async fn record(&self, number: &str, now_ms: i64) -> Result<Target, PrivacyError> {
        let number = normalize(number, self.region)?;
        let handle = self.key.handle(&number);
        self.store
            .record_handle(handle.clone(), number.clone(), now_ms)
            .await?;
        Ok(Target { number, handle })
    }

    /// The number behind a handle, if it was recorded (and not forgotten).
    pub async fn resolve(&self, handle: &str) -> Result<Option<String>, PrivacyError> {
        if !is_handle(handle) {
            return Err(PrivacyError::InvalidHandle(
                handle.chars().take(40).collect(),
            ));
        }
        Ok(self.store.handle_number(handle.to_owned()).await?)
    }

    /// What a client addressed: a handle (mapped back through the store)
    /// or a number (normalised, its mapping recorded).
    pub async fn target(&self, to: &str, now_ms: i64) -> Result<Target, PrivacyError> {
        let to = to.trim();
        if to.starts_with(PREFIX) {
            let number = self
                .resolve(to)
                .await?
                .ok_or_else(|| PrivacyError::UnknownHandle(to.to_owned()))?;
            return Ok(Target {
                number,
                handle: to.to_owned(),
            });
        }
        self.record(to, now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_stable_keyed_and_well_formed() {
        let a = HandleKey::from_bytes([7; 32]);
        let b = HandleKey::from_bytes([8; 32]);
        let h = a.handle("+491711234567");
        assert_eq!(h, a.handle("+491711234567"));
        assert_ne!(h, a.handle("+491711234568"));
        assert_ne!(h, b.handle("+491711234567"));
        assert!(is_handle(&h), "{h}");
        assert_eq!(h.len(), 4 + 16);
        assert!(!h.contains("4917"));
    }

    #[test]
    fn padded_block_equals_the_rfc_2104_key() {
        let key = HandleKey::from_bytes([0x5a; 32]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x5a; 32]).unwrap();
        mac.update(b"+33612345678");
        let expected = mac.finalize().into_bytes();
        let enc = data_encoding::BASE32_NOPAD
            .encode(&expected[..10])
            .to_ascii_lowercase();
        assert_eq!(key.handle("+33612345678"), format!("sms:{enc}"));
    }

    #[test]
    fn rfc_4231_test_case_2_through_our_encoding() {
        // RFC 4231 4.3: key "Jefe", data "what do ya want for nothing?",
        // HMAC-SHA-256 = 5bdcc146bf60754e6a042426089575c75a003f08...
        let mut secret = [0u8; 32];
        secret[..4].copy_from_slice(b"Jefe");
        let h = HandleKey::from_bytes(secret).handle("what do ya want for nothing?");
        let bytes = hex::decode("5bdcc146bf60754e6a04").unwrap();
        let enc = data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase();
        assert_eq!(h, format!("sms:{enc}"));
    }

    #[test]
    fn handle_syntax() {
        assert!(is_handle("sms:abcdefghijklmnop"));
        assert!(is_handle("sms:2345672345672345"));
        assert!(!is_handle("sms:abcdefghijklmno"));
        assert!(!is_handle("sms:ABCDEFGHIJKLMNOP"));
        assert!(!is_handle("sms:abcdefghijklmn01"));
        assert!(!is_handle("+491711234567"));
    }

    #[test]
    fn secret_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/handle.key");
        let k1 = HandleKey::load_or_create(&path).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
        let k2 = HandleKey::load_or_create(&path).unwrap();
        assert_eq!(k1.handle("+1"), k2.handle("+1"));
        // No temporary file left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(format!("{k1:?}"), "HandleKey(..)");
    }

    #[test]
    fn bad_secret_files_are_refused_clearly() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handle.key");
        fs::write(&path, [1u8; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = HandleKey::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(HandleKey::load_or_create(&path).is_ok());
        fs::write(&path, [1u8; 31]).unwrap();
        let e = HandleKey::load_or_create(&path).unwrap_err().to_string();
        assert!(e.contains("31 bytes"), "{e}");
        // The refused file is left alone, never replaced.
        assert_eq!(fs::read(&path).unwrap().len(), 31);
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(HandleKey::load_or_create(&link).is_err());
        let sub = dir.path().join("adir");
        fs::create_dir(&sub).unwrap();
        assert!(HandleKey::load_or_create(&sub).is_err());
    }
}
