//! Finding leaked keys in text: every `agx_live_…` or `agx_test_…` token
//! whose checksum holds, so real keys and not look-alikes (a key with one
//! character changed, an example like `agx_live_XXXX…`, a key cut short).
//!
//! The checksum makes this an offline test: a random 41-character string
//! of the right shape passes it about once in 57 billion, so a scanner can
//! report without asking any store, and ask the store only to learn whether
//! a found key is live (and to revoke it).

use std::sync::Arc;

use crate::authenticator::Authenticator;
use crate::key::{ApiKey, KEY_LEN};
use crate::store::{KeyRecord, StoreError};

/// What the store says of a found key.
#[derive(Clone, Debug)]
pub enum KeyStanding {
    /// No stored key has this hash: not this deployment's key (or one
    /// hashed under another pepper).
    Unknown,
    /// Stored and usable now: the one to revoke.
    Live(Arc<KeyRecord>),
    /// Stored but deleted: no longer a danger.
    Deleted(Arc<KeyRecord>),
    /// Stored but past its expiry: no longer a danger.
    Expired(Arc<KeyRecord>),
}

impl KeyStanding {
    /// How a leak report names the key's fate: `revoked` (it was live and
    /// the report revoked it), `deleted`, `expired` or `unknown`.
    pub fn reported(&self) -> &'static str {
        match self {
            KeyStanding::Unknown => "unknown",
            KeyStanding::Live(_) => "revoked",
            KeyStanding::Deleted(_) => "deleted",
            KeyStanding::Expired(_) => "expired",
        }
    }
}

impl Authenticator {
    /// Whether a key (found in a file, reported by a scanner) is one of this
    /// deployment's and still works, by the same hash and clock a verdict
    /// uses.
    pub async fn key_standing(&self, key: &ApiKey) -> Result<KeyStanding, StoreError> {
        let Some(record) = self.store().find(&self.hasher().hash(key)).await? else {
            return Ok(KeyStanding::Unknown);
        };
        Ok(if record.deleted_at.is_some() {
            KeyStanding::Deleted(record)
        } else if record.is_expired(self.clock().now()) {
            KeyStanding::Expired(record)
        } else {
            KeyStanding::Live(record)
        })
    }

    /// [`key_standing`](Self::key_standing), and a live key deleted: the
    /// answer to a leak. `Live` means it was live and is now revoked; a key
    /// deleted meanwhile by someone else is answered `Deleted`.
    pub async fn revoke_leaked(&self, key: &ApiKey) -> Result<KeyStanding, StoreError> {
        match self.key_standing(key).await? {
            KeyStanding::Live(record) if !self.delete_key(&record.org, record.id).await? => {
                Ok(KeyStanding::Deleted(record))
            }
            standing => Ok(standing),
        }
    }
}

/// The most distinct keys one [`Authenticator::report_leaks`] judges: each
/// is a store lookup, and a report of more is refused whole.
pub const MAX_REPORTED_KEYS: usize = 100;

/// A report held more than [`MAX_REPORTED_KEYS`] distinct keys: nothing
/// was judged or revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyKeys;

impl std::fmt::Display for TooManyKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a leak report may hold at most {MAX_REPORTED_KEYS} distinct keys")
    }
}

impl std::error::Error for TooManyKeys {}

/// Why a leak report was not judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeakReportError {
    TooManyKeys(TooManyKeys),
    Store(StoreError),
}

impl std::fmt::Display for LeakReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeakReportError::TooManyKeys(e) => e.fmt(f),
            LeakReportError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LeakReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LeakReportError::TooManyKeys(e) => Some(e),
            LeakReportError::Store(e) => Some(e),
        }
    }
}

impl Authenticator {
    /// An organization's answer to a text where keys were found (a paste
    /// from a public repository, a log): every distinct real key in it, in
    /// order of first appearance, and what became of it. A live key of
    /// `org` is revoked at once; a key of another organization, or none,
    /// is answered [`KeyStanding::Unknown`] and left alone, so that one
    /// organization can neither revoke nor learn of another's keys.
    pub async fn report_leaks(&self, org: &str, text: &[u8]) -> Result<Vec<(FoundKey, KeyStanding)>, LeakReportError> {
        let mut distinct: Vec<FoundKey> = Vec::new();
        for found in find_keys(text) {
            if !distinct.iter().any(|d| d.key == found.key) {
                distinct.push(found);
            }
        }
        if distinct.len() > MAX_REPORTED_KEYS {
            return Err(LeakReportError::TooManyKeys(TooManyKeys));
        }
        let mut judged = Vec::with_capacity(distinct.len());
        for found in distinct {
            let standing = match self.key_standing(&found.key).await.map_err(LeakReportError::Store)? {
                KeyStanding::Live(r) | KeyStanding::Deleted(r) | KeyStanding::Expired(r) if r.org != org => {
                    KeyStanding::Unknown
                }
                KeyStanding::Live(_) => self.revoke_leaked(&found.key).await.map_err(LeakReportError::Store)?,
                standing => standing,
            };
            judged.push((found, standing));
        }
        Ok(judged)
    }
}

/// A key found in a text, and where: 1-based line and byte column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundKey {
    pub line: usize,
    pub column: usize,
    pub key: ApiKey,
}

/// Every real key in `text`, in order. `text` need not be UTF-8 (a binary
/// file, a Latin-1 log): keys are ASCII and are found among any bytes.
///
/// A key counts only as a token of its own: the bytes around it must not
/// be letters, digits or `_`, so a longer token that happens to contain a
/// key-shaped run is not reported (nor would it work as a key).
pub fn find_keys(text: &[u8]) -> Vec<FoundKey> {
    const MARK: &[u8] = b"agx_";
    let token_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let (mut line, mut line_start, mut counted_to) = (1, 0, 0);
    let mut at = 0;
    while let Some(offset) = find(&text[at..], MARK) {
        let start = at + offset;
        at = start + 1;
        let Some(candidate) = text.get(start..start + KEY_LEN) else { break };
        if start > 0 && token_byte(text[start - 1]) {
            continue;
        }
        if text.get(start + KEY_LEN).is_some_and(|&b| token_byte(b)) {
            continue;
        }
        // Only ASCII reaches the parser; anything else is not a key.
        let Ok(candidate) = std::str::from_utf8(candidate) else { continue };
        let Ok(key) = ApiKey::parse(candidate) else { continue };
        for (i, &b) in text[counted_to..start].iter().enumerate() {
            if b == b'\n' {
                line += 1;
                line_start = counted_to + i + 1;
            }
        }
        counted_to = start;
        found.push(FoundKey { line, column: start - line_start + 1, key });
        at = start + KEY_LEN;
    }
    found
}

/// The offset of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyMode;

    fn key(mode: KeyMode, fill: u8) -> ApiKey {
        ApiKey::from_random_part(mode, &[fill; crate::key::RANDOM_LEN]).unwrap()
    }

    #[test]
    fn real_keys_are_found_with_their_place() {
        let live = key(KeyMode::Live, b'a');
        let test = key(KeyMode::Test, b'Z');
        let text =
            format!("first line\nAPI_KEY=\"{}\" # prod\n\tBearer {}\n", live.expose_secret(), test.expose_secret());
        let found = find_keys(text.as_bytes());
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].line, found[0].column, &found[0].key), (2, 10, &live));
        assert_eq!((found[1].line, found[1].column, &found[1].key), (3, 9, &test));
    }

    #[test]
    fn look_alikes_are_not_keys() {
        let live = key(KeyMode::Live, b'b');
        let s = live.expose_secret();
        let mut tampered = s.as_bytes().to_vec();
        tampered[20] = if tampered[20] == b'x' { b'y' } else { b'x' };
        let tampered = String::from_utf8(tampered).unwrap();
        let cases = [
            "agx_live_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".to_owned(),
            tampered,
            s[..KEY_LEN - 1].to_owned(),
            format!("{s}9"),
            format!("x{s}"),
            format!("_{s}"),
            s.replace("agx_live_", "agx_prod_"),
        ];
        for text in cases {
            assert!(find_keys(text.as_bytes()).is_empty(), "{text}");
        }
        // Delimited by anything else, it is found.
        for around in ["'", "\"", "=", " ", ":", "/", "\u{e9}", "\0"] {
            let text = format!("{around}{s}{around}");
            assert_eq!(find_keys(text.as_bytes()).len(), 1, "{around:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_no_obstacle() {
        let live = key(KeyMode::Live, b'c');
        let mut text = vec![0xff, 0xfe, b'\n', 0x80];
        text.push(b' ');
        text.extend_from_slice(live.expose_secret().as_bytes());
        text.extend_from_slice(&[0xc3, b'\n']);
        text.extend_from_slice(live.expose_secret().as_bytes());
        let found = find_keys(&text);
        assert_eq!(found.iter().map(|f| (f.line, f.column)).collect::<Vec<_>>(), [(2, 3), (3, 1)]);
    }
}
