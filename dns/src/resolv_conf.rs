//! Upstream resolvers from a resolv.conf (resolv.conf(5)): each `nameserver ADDR` line, in
//! order, on port 53. A loopback stub (systemd-resolved's 127.0.0.53) is as good as any:
//! our upstream socket is a host socket. IPv6 addresses with a zone (`fe80::1%eth0`) are
//! skipped, since a zone cannot be carried in a `SocketAddr` portably.

use std::net::{IpAddr, SocketAddr};

/// The DNS port (RFC 1035 §4.2).
pub const PORT: u16 = 53;

/// The nameservers named in `text`.
pub fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, PORT))
        })
        .collect()
}

/// `IP` or `IP:PORT` (`[V6]:PORT` for IPv6 with a port), as `--dns-upstream` takes it.
pub fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, PORT));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("{text:?} is not IP or IP:PORT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_in_order() {
        let text = "# comment\nsearch example\nnameserver 127.0.0.53\nnameserver ::1\n\
                    nameserver fe80::1%eth0\noptions edns0\nnameserver\tx\n nameserver 10.0.0.1";
        let got = nameservers(text);
        let want: Vec<SocketAddr> = ["127.0.0.53:53", "[::1]:53", "10.0.0.1:53"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn upstream_flags() {
        assert_eq!(
            parse_upstream("127.0.0.1"),
            "127.0.0.1:53".parse().map_err(|_| String::new())
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353"),
            "127.0.0.1:5353".parse().map_err(|_| String::new())
        );
        assert_eq!(
            parse_upstream("::1"),
            "[::1]:53".parse().map_err(|_| String::new())
        );
        assert!(parse_upstream("localhost").is_err());
    }
}
