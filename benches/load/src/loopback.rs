//! Targets on this machine only: `127.0.0.0/8`, `::1` or `localhost`.
//!
//! A URL is checked twice: its host must be a loopback address or the
//! name `localhost`, and every address that host resolves to must be a
//! loopback address too (a hosts file may say otherwise about
//! `localhost`). Only `http://` is accepted: the server under test listens
//! without TLS.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};

use anyhow::{Context as _, bail};

/// Where requests go: the socket address and what the request line and
/// `Host` header carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The loopback address to connect to.
    pub addr: SocketAddr,
    /// The `Host` header (`127.0.0.1:8080`).
    pub authority: String,
    /// The path and query (`/github/<hook-id>`).
    pub path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT]/PATH`; fails for any other scheme, for a
    /// host that is not loopback, or for one that resolves elsewhere.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().context("not a URL")?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported");
        }
        let authority = uri.authority().context("the URL has no host")?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !is_loopback_name(bare) {
            bail!("refusing {host}: only 127.0.0.0/8, ::1 and localhost are allowed");
        }

        let addr = (bare, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .find(|addr| addr.ip().is_loopback())
            .with_context(|| format!("{host} resolves to no loopback address"))?;
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(Self {
            addr,
            authority: authority.as_str().to_string(),
            path,
        })
    }
}

/// Whether `host` (without brackets) names this machine.
pub fn is_loopback_name(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        // `Ipv4Addr::is_loopback` is the whole of 127.0.0.0/8.
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

/// Checks the host of an `amqp://` URL the same way, without resolving it
/// (lapin resolves it; a name other than `localhost` is refused anyway).
pub fn check_amqp_url(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("amqp://")
        .context("only amqp:// URLs are supported")?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    if !is_loopback_name(host) {
        bail!("refusing broker {host}: only 127.0.0.0/8 and localhost are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_loopback_range_and_localhost() {
        for url in [
            "http://127.0.0.1:8080/github/abc",
            "http://127.3.2.1:9/github/abc",
            "http://[::1]:8080/github/abc",
            "http://localhost:8080/github/abc",
        ] {
            let target = Target::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(target.addr.ip().is_loopback(), "{url}");
            assert_eq!(target.path, "/github/abc");
        }
    }

    #[test]
    fn refuses_every_other_host() {
        for url in [
            "http://10.0.0.1:8080/github/abc",
            "http://192.168.1.1/github/abc",
            "http://169.254.169.254/latest",
            "http://[::ffff:10.0.0.1]:80/x",
            "http://example.org/github/abc",
            "http://128.0.0.1/x",
            "https://127.0.0.1/x",
        ] {
            assert!(Target::from_url(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn checks_broker_hosts() {
        check_amqp_url("amqp://guest:guest@127.0.0.1:5672/%2f").expect("loopback");
        check_amqp_url("amqp://localhost/%2f").expect("localhost");
        assert!(check_amqp_url("amqp://guest:guest@10.1.1.1:5672/%2f").is_err());
        assert!(check_amqp_url("amqps://127.0.0.1/%2f").is_err());
    }
}
