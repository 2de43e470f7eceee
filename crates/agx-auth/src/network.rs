//! Which address a request comes from, for keys limited to networks.
//!
//! The address is the connection's ([`RequestHeaders::peer`]), unless that
//! connection is from a proxy the operator trusts: then the proxies' own
//! header is read **from the right**, hop by hop, and the client is the
//! first address that is not a trusted proxy. Every proxy appends the
//! address it was reached from, so the right-hand entries are written by
//! proxies we trust and the left-hand ones by whoever sent the request.
//! Reading the left-most entry, as many peers do, lets a client name any
//! address it likes (`X-Forwarded-For: 10.0.0.1`).
//!
//! Only one header is read, the one the proxies are configured to write:
//! a proxy that appends to `X-Forwarded-For` passes a client's own
//! `Forwarded` through untouched, so reading both would trust the client.
//! An entry that is not an address (`unknown`, an obfuscated name, junk)
//! ends the walk with no address, and a key limited to networks is then
//! refused: fail closed.

use std::net::IpAddr;

pub use ipnet::IpNet;

use crate::request::{RequestHeader, RequestHeaders};

/// The header trusted proxies append the client's address to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's
    /// `$proxy_add_x_forwarded_for`, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:443"`.
    Forwarded,
}

/// How the client's address is found: the proxies trusted to say it, and
/// the header they say it in. The default trusts none: the address is the
/// connection's.
#[derive(Clone, Debug, Default)]
pub struct ClientAddresses {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
}

impl ClientAddresses {
    /// Trust the proxies in `trusted` to append to `header`.
    pub fn through(trusted: impl IntoIterator<Item = IpNet>, header: ForwardedHeader) -> Self {
        ClientAddresses { trusted: trusted.into_iter().map(canonical_network).collect(), header }
    }

    /// The address a verify call's caller vouches for: believed only from
    /// a trusted proxy (the calling service is then the last hop), else
    /// the caller's own address. A trusted caller that names none leaves
    /// the client unknown.
    pub fn vouched(&self, peer: Option<IpAddr>, claimed: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if self.trusts(peer) { claimed.map(|c| c.to_canonical()) } else { Some(peer) }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client's address, or `None` when it cannot be told (no
    /// connection address, or a hop that is not an address).
    pub fn client<H: RequestHeaders + ?Sized>(&self, headers: &H) -> Option<IpAddr> {
        let peer = headers.peer()?.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let header = match self.header {
            ForwardedHeader::XForwardedFor => RequestHeader::XForwardedFor,
            ForwardedHeader::Forwarded => RequestHeader::Forwarded,
        };
        // Several header lines are one list, in order; read it backwards.
        let values: Vec<&[u8]> = headers.values(header).collect();
        for value in values.into_iter().rev() {
            let text = std::str::from_utf8(value).ok()?;
            for hop in text.rsplit(',') {
                let hop = hop.trim_matches([' ', '\t']);
                let ip = match self.header {
                    ForwardedHeader::XForwardedFor => node(hop)?,
                    ForwardedHeader::Forwarded => forwarded_for(hop)?,
                }
                .to_canonical();
                if !self.trusts(ip) {
                    return Some(ip);
                }
            }
        }
        // Every hop is a trusted proxy (or the proxy sent no header): the
        // request names no client, and a proxy is never one itself, or any
        // key limited to the proxies' own network would be open to every
        // request that reached it without the header.
        None
    }
}

/// A network as it is compared: host bits cleared, and an IPv4 network
/// written in IPv6 (`::ffff:10.0.0.0/104`) as the IPv4 one (`10.0.0.0/8`),
/// since addresses are compared as IPv4.
pub fn canonical_network(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
    .trunc()
}

/// An address as a hop names it: `192.0.2.1`, `192.0.2.1:8080`,
/// `2001:db8::1` or `[2001:db8::1]:443`.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        return (after.is_empty() || after.strip_prefix(':').is_some_and(port)).then(|| v6.parse().ok()).flatten();
    }
    let (v4, p) = text.rsplit_once(':')?;
    if !port(p) {
        return None;
    }
    v4.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim_matches([' ', '\t']).split_once('=')?;
        if !name.eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        node(value)
    })
}

/// Whether `ip` is in one of `networks`; an empty list allows every address.
pub fn network_allowed(ip: Option<IpAddr>, networks: &[IpNet]) -> bool {
    networks.is_empty() || ip.is_some_and(|ip| networks.iter().any(|n| n.contains(&ip.to_canonical())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::FromPeer;
    use http::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn client(policy: &ClientAddresses, peer: &str, lines: &[(&str, &str)]) -> Option<IpAddr> {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        policy.client(&FromPeer::new(&h, Some(ip(peer))))
    }

    #[test]
    fn without_trusted_proxies_the_connection_is_the_client() {
        let none = ClientAddresses::default();
        assert_eq!(client(&none, "203.0.113.7", &[("x-forwarded-for", "10.0.0.1")]), Some(ip("203.0.113.7")));
        assert_eq!(client(&none, "::ffff:203.0.113.7", &[]), Some(ip("203.0.113.7")), "mapped v4 is v4");
        let h = HeaderMap::new();
        assert_eq!(none.client(&FromPeer::new(&h, None)), None);
    }

    #[test]
    fn the_walk_goes_from_the_right_and_stops_at_the_first_untrusted_hop() {
        let lb = ClientAddresses::through([net("10.0.0.0/8")], ForwardedHeader::XForwardedFor);
        let xff = |v: &str| client(&lb, "10.0.0.2", &[("x-forwarded-for", v)]);
        assert_eq!(xff("198.51.100.4"), Some(ip("198.51.100.4")));
        // The client wrote the left part: it cannot choose its address.
        assert_eq!(xff("10.1.2.3, 198.51.100.4"), Some(ip("198.51.100.4")));
        assert_eq!(xff("192.0.2.1, 198.51.100.4, 10.0.0.9"), Some(ip("198.51.100.4")));
        assert_eq!(xff("10.0.0.5, 10.0.0.9"), None, "all trusted: no client, never a proxy");
        assert_eq!(xff("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(xff("198.51.100.4:5000"), Some(ip("198.51.100.4")));
        assert_eq!(xff("unknown"), None);
        assert_eq!(xff("198.51.100.4, junk"), None, "a hop we cannot read ends the walk");
        assert_eq!(xff("198.51.100.4:99999x"), None);
        // Two header lines are one list; the later line is nearer.
        let two = client(&lb, "10.0.0.2", &[("x-forwarded-for", "10.9.9.9"), ("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(two, Some(ip("198.51.100.4")));
        // No header from a trusted proxy: no client.
        assert_eq!(client(&lb, "10.0.0.2", &[]), None);
        // The other header is not read.
        assert_eq!(client(&lb, "10.0.0.2", &[("forwarded", "for=198.51.100.4")]), None);
        // An untrusted connection's header is not read at all.
        assert_eq!(client(&lb, "192.0.2.9", &[("x-forwarded-for", "10.0.0.3")]), Some(ip("192.0.2.9")));
    }

    #[test]
    fn forwarded_elements_name_the_client_in_for() {
        let lb = ClientAddresses::through([net("10.0.0.0/8"), net("fd00::/8")], ForwardedHeader::Forwarded);
        let fwd = |v: &str| client(&lb, "fd00::1", &[("forwarded", v)]);
        assert_eq!(fwd("for=198.51.100.4;proto=https"), Some(ip("198.51.100.4")));
        assert_eq!(fwd(r#"for="[2001:db8:cafe::17]:4711""#), Some(ip("2001:db8:cafe::17")));
        assert_eq!(fwd("for=192.0.2.1, for=198.51.100.4, for=10.0.0.3"), Some(ip("198.51.100.4")));
        assert_eq!(fwd("By=10.0.0.1;FOR=198.51.100.4"), Some(ip("198.51.100.4")));
        assert_eq!(fwd("for=unknown"), None);
        assert_eq!(fwd("for=_hidden"), None);
        assert_eq!(fwd("proto=https"), None, "an element without for");
    }

    #[test]
    fn a_caller_vouches_only_from_a_trusted_address() {
        let lb = ClientAddresses::through([net("::ffff:10.0.0.0/104")], ForwardedHeader::XForwardedFor);
        let claimed = Some(ip("192.0.2.1"));
        assert_eq!(lb.vouched(Some(ip("10.0.0.2")), claimed), claimed, "a mapped network trusts v4 peers");
        assert_eq!(lb.vouched(Some(ip("10.0.0.2")), None), None);
        assert_eq!(lb.vouched(Some(ip("203.0.113.9")), claimed), Some(ip("203.0.113.9")), "the caller itself");
        assert_eq!(lb.vouched(None, claimed), None);
    }

    #[test]
    fn networks_are_compared_in_canonical_form() {
        assert_eq!(canonical_network(net("::ffff:10.1.2.3/104")), net("10.0.0.0/8"));
        assert_eq!(canonical_network(net("::ffff:10.1.2.3/128")), net("10.1.2.3/32"));
        assert_eq!(canonical_network(net("2001:db8::1/32")), net("2001:db8::/32"));
        assert_eq!(canonical_network(net("::/0")), net("::/0"));
    }

    #[test]
    fn networks_contain_addresses_of_their_family() {
        let nets = [net("192.0.2.0/24"), net("2001:db8::/32")];
        assert!(network_allowed(Some(ip("192.0.2.200")), &nets));
        assert!(network_allowed(Some(ip("::ffff:192.0.2.200")), &nets));
        assert!(network_allowed(Some(ip("2001:db8:1::5")), &nets));
        assert!(!network_allowed(Some(ip("192.0.3.1")), &nets));
        assert!(!network_allowed(Some(ip("2001:db9::1")), &nets));
        assert!(!network_allowed(None, &nets), "unknown is refused");
        assert!(network_allowed(None, &[]), "no list, no limit");
    }
}
