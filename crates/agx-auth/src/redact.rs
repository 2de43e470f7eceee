//! Connection strings in errors and logs, without their passwords.
//!
//! Stores and limiters name the server they cannot reach, because "cannot
//! reach PostgreSQL" without an address is a support ticket; the password in
//! that address must not travel with it.

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db` (PostgreSQL
/// and Redis URLs alike), and `password=secret` or `password='a secret'` →
/// `password=***` in a key=value connection string.
pub fn redact_url(url: &str) -> String {
    if let Some(at) = url.find("password=") {
        let value_start = at + "password=".len();
        let value = &url[value_start..];
        let value_len = match value.strip_prefix('\'') {
            // A quoted value runs to the next unescaped quote, spaces included.
            Some(quoted) => {
                let mut escaped = false;
                let close = quoted.char_indices().find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                });
                close.map_or(value.len(), |(i, _)| i + 2)
            }
            None => value.find(' ').unwrap_or(value.len()),
        };
        return format!("{}***{}", &url[..value_start], &value[value_len..]);
    }
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}:***{}", &url[..scheme_end], &rest[..colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_an_error() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/agx"), "postgres://app:***@db:5432/agx");
        assert_eq!(redact_url("postgres://app@db/agx"), "postgres://app@db/agx");
        assert_eq!(redact_url("postgres://db/agx"), "postgres://db/agx");
        assert_eq!(redact_url("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact_url("rediss://app:s3cret@cache"), "rediss://app:***@cache");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact_url("host=db user=app"), "host=db user=app");
        assert_eq!(redact_url("host=db password=s3cret user=app"), "host=db password=*** user=app");
        assert_eq!(redact_url("host=db password='a b\\' c' user=app"), "host=db password=*** user=app");
        assert_eq!(redact_url("host=db password='unterminated"), "host=db password=***");
    }
}
