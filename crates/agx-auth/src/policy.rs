//! Domain restriction (contract §3, step 8).

/// Whether an `Origin` header value names an allowed host: the host equals an
/// allowed domain or is a subdomain of one (`app.example.com` matches
/// `example.com`), ignoring case, scheme and port. An origin with no host
/// (`null`, garbage, non-ASCII) is not allowed: an agent that restricts
/// domains gets no exception for origins it cannot read.
pub fn origin_allowed(origin: &[u8], allowed: &[String]) -> bool {
    let Some(host) = origin_host(origin) else { return false };
    allowed.iter().any(|domain| {
        let domain = domain.trim_end_matches('.').as_bytes();
        if domain.is_empty() || host.len() < domain.len() {
            return false;
        }
        let (head, tail) = host.split_at(host.len() - domain.len());
        tail.eq_ignore_ascii_case(domain) && (head.is_empty() || head.ends_with(b"."))
    })
}

/// `https://App.Example.com:8443` → `App.Example.com`; `[::1]` keeps its brackets.
fn origin_host(origin: &[u8]) -> Option<&[u8]> {
    let at = origin.windows(3).position(|w| w == b"://")?;
    let rest = &origin[at + 3..];
    let end = if rest.first() == Some(&b'[') {
        rest.iter().position(|&b| b == b']')? + 1
    } else {
        rest.iter().position(|&b| b == b':' || b == b'/').unwrap_or(rest.len())
    };
    let host = &rest[..end];
    let host = host.strip_suffix(b".").unwrap_or(host);
    let valid = !host.is_empty() && host.iter().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(b));
    valid.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(origin: &str) -> bool {
        origin_allowed(origin.as_bytes(), &["example.com".to_string(), "[::1]".to_string()])
    }

    #[test]
    fn hosts_and_subdomains_match() {
        assert!(allowed("https://example.com"));
        assert!(allowed("http://EXAMPLE.com:8080"));
        assert!(allowed("https://app.example.com"));
        assert!(allowed("https://a.b.example.com."));
        assert!(allowed("http://[::1]:3000"));
    }

    #[test]
    fn lookalikes_and_junk_do_not() {
        assert!(!allowed("https://notexample.com"));
        assert!(!allowed("https://example.com.evil.org"));
        assert!(!allowed("https://example.co"));
        assert!(!allowed("null"));
        assert!(!allowed("example.com"));
        assert!(!allowed("https://"));
        assert!(!origin_allowed("https://ex\u{e4}mple.com".as_bytes(), &["example.com".into()]));
    }
}
