//! What the server accepts as text, and how much of it: checked before
//! anything reaches a store, so that every store refuses the same input with
//! the same 400 (PostgreSQL cannot hold a NUL in `text` or `\u0000` in
//! `jsonb`; the memory store could, and must not differ).

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// The longest chat message, in characters (the agent configuration's
/// `limits.maxMessageLength`).
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// `sessionId`: 1 to this many characters.
pub const MAX_SESSION_CHARS: usize = 128;
/// Names of orgs, agents, teams and keys; visitor fields.
pub const MAX_NAME_CHARS: usize = 200;
/// A conversation's metadata, as compact JSON, after every merge.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Messages one conversation may hold (a chat adds two).
pub const MAX_MESSAGES: usize = 1000;
/// Conversation pages: `limit` is 1 to this; `offset` at most [`MAX_MESSAGES`].
pub const MAX_PAGE: usize = 100;
/// An agent's allowed domains; a team's agents.
pub const MAX_LIST: usize = 100;
/// Any request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The longest place a leak report may name (a URL, a path).
pub const MAX_FOUND_IN: usize = 2048;

/// Text that every store can hold: no NUL, and no other ASCII control
/// character but tab, line feed and carriage return.
pub fn storable(text: &str) -> bool {
    !text.bytes().any(forbidden)
}

fn forbidden(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f)
}

/// Blank: nothing but spaces, tabs and line breaks.
fn blank(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// The rule of [`check_text`] as a JSON Schema pattern, for the document:
/// storable characters, at least one of them not blank. Written with
/// explicit ranges so that every regex engine reads it alike.
pub const TEXT_PATTERN: &str =
    r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$";

/// The names of orgs, agents, teams, keys and dashboard tokens: what
/// [`check_text`] takes, without the bidirectional controls (U+202A to
/// U+202E, U+2066 to U+2069). The dashboard shows these names, and an
/// override in one could make it read as another ("Production" shown for
/// "noitcudorP"). Chat text keeps them: right-to-left writing needs them.
pub fn check_name(text: &str, error: ApiError) -> Result<(), ApiError> {
    check_text(text, MAX_NAME_CHARS, error)?;
    if text.chars().any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')) {
        Err(error)
    } else {
        Ok(())
    }
}

/// The rule of [`check_name`] as a pattern.
pub const NAME_PATTERN: &str = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]*[^\x00-\x20\x7f\u202a-\u202e\u2066-\u2069][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]*$";

/// The rule of [`session_id`] as a pattern: no `/`, no control character,
/// not only spaces.
pub const SESSION_PATTERN: &str = r"^[^/\x00-\x1f\x7f]*[^/\x00-\x20\x7f][^/\x00-\x1f\x7f]*$";

/// An allowed domain: a host name, as the domain rule compares it.
pub const HOST_PATTERN: &str =
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

/// `storable`, not blank, and at most `max` characters (what JSON Schema's
/// `maxLength` counts).
pub fn check_text(text: &str, max: usize, error: ApiError) -> Result<(), ApiError> {
    if blank(text) || text.chars().count() > max || !storable(text) { Err(error) } else { Ok(()) }
}

/// A network in CIDR (`203.0.113.0/24`, `2001:db8::/32`) or one address
/// (`203.0.113.7`, a /32 or /128), as the core compares it
/// ([`agx_auth::canonical_network`]).
pub fn network(text: &str) -> Option<agx_auth::IpNet> {
    if text.len() > 64 {
        return None;
    }
    let net = match text.parse::<agx_auth::IpNet>() {
        Ok(net) => net,
        Err(_) => agx_auth::IpNet::from(text.parse::<std::net::IpAddr>().ok()?),
    };
    Some(agx_auth::canonical_network(net))
}

/// One IPv4 address, as `format: ipv4` and Rust's parser read it (no
/// leading zeros).
const IPV4: &str = r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
/// One IPv6 address in any of its written forms, without a zone.
const IPV6: &str = concat!(
    "(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
    "|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
    "|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
    "|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:))"
);

/// What [`network`] takes, as a pattern for the OpenAPI document: an
/// address, or an address and a prefix length its family allows.
pub fn network_pattern() -> String {
    format!("^({IPV4}(/(3[0-2]|[12]?[0-9]))?|{IPV6}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$")
}

/// What the verify API's `clientAddress` takes.
pub fn address_pattern() -> String {
    format!("^({IPV4}|{IPV6})$")
}

/// [`HOST_PATTERN`]: labels of letters, digits and inner `-`, 1 to 63
/// long, joined by dots; 253 in all at most.
pub fn host(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|label| {
            let b = label.as_bytes();
            (1..=63).contains(&b.len())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// An optional field: absent is fine, present must pass [`check_text`].
pub fn check_optional(text: Option<&str>, max: usize, error: ApiError) -> Result<(), ApiError> {
    text.map_or(Ok(()), |t| check_text(t, max, error))
}

/// Whether a session id can name a conversation: what chat accepts
/// ([`SESSION_PATTERN`], 1 to [`MAX_SESSION_CHARS`] characters).
pub fn session_id(text: &str) -> bool {
    !text.bytes().all(|b| b == b' ')
        && text.chars().count() <= MAX_SESSION_CHARS
        && !text.bytes().any(|b| b == b'/' || b < 0x20 || b == 0x7f)
}

const BAD_METADATA: ApiError = ApiError::invalid("metadata must be an object whose keys and strings hold no NUL");

/// Metadata that every store can hold: no NUL (nor other control
/// characters) in any key or string, at any depth.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<(), ApiError> {
    fn value_ok(v: &Value) -> bool {
        match v {
            Value::String(s) => storable(s),
            Value::Array(items) => items.iter().all(value_ok),
            Value::Object(m) => m.iter().all(|(k, v)| storable(k) && value_ok(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => true,
        }
    }
    if metadata.iter().all(|(k, v)| storable(k) && value_ok(v)) { Ok(()) } else { Err(BAD_METADATA) }
}

/// The size that [`MAX_METADATA_BYTES`] bounds: compact JSON, as both
/// stores are handed it.
pub fn metadata_size(metadata: &Map<String, Value>) -> usize {
    serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(storable("Hello\n\tworld"));
        assert!(!storable("a\u{0}b"));
        assert!(!storable("\u{1b}[31m"));
        assert!(storable("\u{85}\u{feff}"));
        assert!(
            host("example.com") && host("a-b.c1") && !host("-a.com") && !host("a..b") && !host("") && !host("ex ample")
        );
        let e = ApiError::invalid("x");
        assert!(check_text("  ", 10, e).is_err());
        assert!(check_text("\u{3000}", 10, e).is_ok());
        assert!(check_text("ééé", 3, e).is_ok());
        assert!(check_text("éééé", 3, e).is_err());
        assert!(session_id("s1") && !session_id("") && !session_id("a/b") && !session_id("a\u{0}"));
    }

    #[test]
    fn metadata_rules() {
        let ok: Map<String, Value> = serde_json::from_str(r#"{"a":[1,{"b":"c"}],"d":null}"#).unwrap();
        assert!(check_metadata(&ok).is_ok());
        for bad in [r#"{"a\u0000":1}"#, r#"{"a":["\u0000"]}"#, r#"{"a":{"b":{"c":"x\u0000"}}}"#] {
            let m: Map<String, Value> = serde_json::from_str(bad).unwrap();
            assert!(check_metadata(&m).is_err(), "{bad}");
        }
        assert_eq!(metadata_size(&ok), r#"{"a":[1,{"b":"c"}],"d":null}"#.len());
    }
}
