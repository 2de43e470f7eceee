//! Key format (contract §1): `agx_live_` or `agx_test_`, 26 random base62
//! characters, a 6-character base62 CRC32 checksum.
//!
//! The checksum is GitHub's token design: a typo or a random string is refused
//! here, before any hash, cache or store is touched, and a secret scanner can
//! recognise a real key offline.

use std::fmt;

use ring::{digest, hmac, rand::SecureRandom};

/// The 62 characters a key body is made of, in the order the checksum uses.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_LEN: usize = 9;
/// Random characters in a key.
pub const RANDOM_LEN: usize = 26;
const CHECKSUM_LEN: usize = 6;
/// Length in bytes of every well-formed key.
pub const KEY_LEN: usize = PREFIX_LEN + RANDOM_LEN + CHECKSUM_LEN;

/// Live keys are production keys; test keys are for development environments
/// and carry the same guarantees (the page calls them "coming soon"; we ship
/// them so a principal can tell which one it holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyMode {
    Live,
    Test,
}

impl KeyMode {
    pub const fn prefix(self) -> &'static str {
        match self {
            KeyMode::Live => "agx_live_",
            KeyMode::Test => "agx_test_",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(KeyMode::Live),
            "test" => Some(KeyMode::Test),
            _ => None,
        }
    }
}

/// Why a string is not a key. All of these answer `INVALID_API_KEY`; the
/// distinction is for logs and tests, never for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormatError {
    Length,
    Prefix,
    Character,
    Checksum,
}

/// A well-formed API key. The plaintext lives only here, on the stack, and is
/// never printed in full: `Debug` shows the display prefix, and there is no
/// `Display`. [`ApiKey::expose_secret`] is the one door to the plaintext, for
/// the single response that shows a new key to its owner.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    bytes: [u8; KEY_LEN],
}

impl ApiKey {
    /// A new key whose 26 random characters come from `rng`, uniform over
    /// base62 by rejection sampling (bytes ≥ 248 are thrown away so that no
    /// character is likelier than another).
    pub fn generate(rng: &dyn SecureRandom, mode: KeyMode) -> Result<Self, ring::error::Unspecified> {
        let mut random = [0u8; RANDOM_LEN];
        let mut filled = 0;
        let mut pool = [0u8; 64];
        while filled < RANDOM_LEN {
            rng.fill(&mut pool)?;
            for &b in pool.iter().filter(|&&b| b < 248) {
                if filled == RANDOM_LEN {
                    break;
                }
                random[filled] = BASE62[usize::from(b % 62)];
                filled += 1;
            }
        }
        // Every byte is from BASE62, so this cannot fail.
        ApiKey::from_random_part(mode, &random).map_err(|_| ring::error::Unspecified)
    }

    /// The key with these 26 random characters (which must be base62) and
    /// its checksum. For deterministic fixtures and tests; real keys come
    /// from [`ApiKey::generate`].
    pub fn from_random_part(mode: KeyMode, random: &[u8; RANDOM_LEN]) -> Result<Self, KeyFormatError> {
        if !random.iter().all(u8::is_ascii_alphanumeric) {
            return Err(KeyFormatError::Character);
        }
        let mut bytes = [0u8; KEY_LEN];
        bytes[..PREFIX_LEN].copy_from_slice(mode.prefix().as_bytes());
        bytes[PREFIX_LEN..PREFIX_LEN + RANDOM_LEN].copy_from_slice(random);
        let checksum = checksum(&bytes[..PREFIX_LEN + RANDOM_LEN]);
        bytes[PREFIX_LEN + RANDOM_LEN..].copy_from_slice(&checksum);
        Ok(ApiKey { bytes })
    }

    /// Parses a candidate key. Length is checked first so that a megabyte of
    /// junk costs one comparison.
    pub fn parse(candidate: &str) -> Result<Self, KeyFormatError> {
        let raw = candidate.as_bytes();
        let bytes: [u8; KEY_LEN] = raw.try_into().map_err(|_| KeyFormatError::Length)?;
        let (prefix, body) = bytes.split_at(PREFIX_LEN);
        if prefix != KeyMode::Live.prefix().as_bytes() && prefix != KeyMode::Test.prefix().as_bytes() {
            return Err(KeyFormatError::Prefix);
        }
        // One branch-free pass (vectorized), where `all` tests every byte.
        if !body.iter().fold(true, |ok, b| ok & b.is_ascii_alphanumeric()) {
            return Err(KeyFormatError::Character);
        }
        let (signed, given) = bytes.split_at(PREFIX_LEN + RANDOM_LEN);
        // Decoding the six given characters costs multiplications where
        // encoding the CRC would cost divisions; base62 of values below 62⁶
        // is a bijection, so the comparison is the same.
        let given = given.iter().fold(0u64, |n, &c| n * 62 + u64::from(base62_digit(c)));
        if given != u64::from(crc32fast::hash(signed)) {
            return Err(KeyFormatError::Checksum);
        }
        Ok(ApiKey { bytes })
    }

    pub fn mode(&self) -> KeyMode {
        if self.bytes.starts_with(KeyMode::Test.prefix().as_bytes()) { KeyMode::Test } else { KeyMode::Live }
    }

    /// The plaintext. Call it only to show a new key to its owner once.
    pub fn expose_secret(&self) -> &str {
        // Only ASCII bytes are ever stored (prefix + base62), so this cannot fail.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// What a listing shows instead of the key: `agx_live_sk7G…mA`.
    pub fn display_prefix(&self) -> String {
        let s = self.expose_secret();
        format!("{}…{}", &s[..PREFIX_LEN + 4], &s[KEY_LEN - 2..])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKey").field(&self.display_prefix()).finish()
    }
}

/// The value of a base62 digit (the caller has checked it is alphanumeric).
fn base62_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'Z' => c - b'A' + 10,
        _ => c.wrapping_sub(b'a').wrapping_add(36),
    }
}

/// CRC32 (IEEE) of the prefix and random part, in base62, left-padded with `0`.
/// `u32::MAX` < 62⁶, so six characters always suffice.
fn checksum(signed: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(signed);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// What the store keeps instead of the key: SHA-256 of the whole key string,
/// or HMAC-SHA256 under a server-side pepper. Comparing hashes needs no
/// constant-time care: the store looks them up by equality of a one-way image.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The inverse of [`KeyHash::to_hex`]: 64 hex digits, either case.
    pub fn from_hex(text: &str) -> Option<KeyHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(KeyHash(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits identify a hash in a log without making it a lookup key.
        let hex = self.to_hex();
        write!(f, "KeyHash({}…)", &hex[..8])
    }
}

/// Turns a key into its [`KeyHash`]. With a pepper, a stolen table of hashes
/// cannot be checked against guessed keys without the server's secret too.
#[derive(Clone, Default)]
pub enum KeyHasher {
    #[default]
    Sha256,
    Peppered(hmac::Key),
}

impl KeyHasher {
    pub fn with_pepper(pepper: &[u8]) -> Self {
        KeyHasher::Peppered(hmac::Key::new(hmac::HMAC_SHA256, pepper))
    }

    pub fn hash(&self, key: &ApiKey) -> KeyHash {
        let mut out = [0u8; 32];
        match self {
            KeyHasher::Sha256 => out.copy_from_slice(digest::digest(&digest::SHA256, &key.bytes).as_ref()),
            KeyHasher::Peppered(k) => out.copy_from_slice(hmac::sign(k, &key.bytes).as_ref()),
        }
        KeyHash(out)
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyHasher::Sha256 => "KeyHasher::Sha256",
            KeyHasher::Peppered(_) => "KeyHasher::Peppered(..)",
        })
    }
}

/// A key's public identifier: 128 random bits, shown as `key_` and 32 hex
/// digits. `Copy` and hashable in one step, so the limiter keys on it for free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u128);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdParseError;

impl fmt::Display for KeyIdParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key id is `key_` followed by 32 hex digits")
    }
}

impl std::error::Error for KeyIdParseError {}

impl KeyId {
    /// What [`KeyId`]'s `FromStr` accepts, as a JSON Schema pattern.
    pub const PATTERN: &'static str = "^key_[0-9a-f]{32}$";

    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, ring::error::Unspecified> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        Ok(KeyId(u128::from_be_bytes(b)))
    }
}

impl std::str::FromStr for KeyId {
    type Err = KeyIdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("key_").ok_or(KeyIdParseError)?;
        if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(KeyIdParseError);
        }
        u128::from_str_radix(hex, 16).map(KeyId).map_err(|_| KeyIdParseError)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key_{:032x}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let rng = SystemRandom::new();
        for mode in [KeyMode::Live, KeyMode::Test] {
            let key = ApiKey::generate(&rng, mode).unwrap();
            let s = key.expose_secret();
            assert_eq!(s.len(), 41);
            assert!(s.starts_with(mode.prefix()));
            assert_eq!(ApiKey::parse(s), Ok(key.clone()));
            assert_eq!(key.mode(), mode);
        }
    }

    #[test]
    fn the_page_example_is_rejected_by_its_checksum() {
        // The page's example was not made with our checksum: it is exactly the
        // kind of plausible string the checksum exists to refuse offline.
        assert_eq!(ApiKey::parse("agx_live_sk7Gm2xPqR4tN8vW1yBz3dF6hJ9kL0mA"), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = ApiKey::generate(&SystemRandom::new(), KeyMode::Live).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(key.expose_secret()));
        assert!(shown.contains('…'));
        assert_eq!(key.display_prefix().chars().count(), 9 + 4 + 1 + 2);
    }

    #[test]
    fn pepper_changes_the_hash() {
        let key = ApiKey::generate(&SystemRandom::new(), KeyMode::Live).unwrap();
        assert_ne!(KeyHasher::Sha256.hash(&key), KeyHasher::with_pepper(b"pepper").hash(&key));
        assert_eq!(KeyHasher::Sha256.hash(&key), KeyHasher::Sha256.hash(&key));
    }

    #[test]
    fn key_ids_round_trip() {
        let id = KeyId::generate(&SystemRandom::new()).unwrap();
        assert_eq!(id.to_string().parse::<KeyId>(), Ok(id));
        assert!("key_XYZ".parse::<KeyId>().is_err());
        assert!("kex_00000000000000000000000000000000".parse::<KeyId>().is_err());
    }
}
