//! Address arithmetic for IPAM: CIDRs, addresses as integers, allocation pools and their validation, MAC
//! addresses and IPv6 EUI-64 addresses. Pure functions, shared by the aggregates (which decide) and the API
//! (which validates requests before any command).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP network: version, network address (as an integer) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub v6: bool,
    pub net: u128,
    pub prefix: u8,
}

/// An address as an integer, with its version.
pub fn parse_ip(s: &str) -> Option<(bool, u128)> {
    match s.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some((false, u32::from(a) as u128)),
        IpAddr::V6(a) => Some((true, u128::from(a))),
    }
}

/// An address of the given version, parsed (None when it is not one).
pub fn parse_ip_of(s: &str, v6: bool) -> Option<u128> {
    parse_ip(s).filter(|(v, _)| *v == v6).map(|(_, a)| a)
}

/// The canonical text of an address.
pub fn fmt_ip(a: u128, v6: bool) -> String {
    if v6 {
        Ipv6Addr::from(a).to_string()
    } else {
        Ipv4Addr::from(a as u32).to_string()
    }
}

/// The canonical text of an address given as text (None when it is not an address).
pub fn canonical_ip(s: &str) -> Option<String> {
    parse_ip(s).map(|(v6, a)| fmt_ip(a, v6))
}

/// A sortable key for an address: 32 hex digits, so the text order is the numeric order.
pub fn ip_key(a: u128) -> String {
    format!("{a:032x}")
}

pub fn key_ip(k: &str) -> Option<u128> {
    u128::from_str_radix(k, 16).ok()
}

impl Cidr {
    /// Parse `a.b.c.d/n` or `x::/n`. The address must be the network address (host bits zero), as
    /// Neutron requires of a subnet's cidr.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let c = Self::parse_loose(s)?;
        if c.net & c.host_mask() != 0 {
            let fixed = Cidr {
                net: c.net & !c.host_mask(),
                ..c
            };
            return Err(format!(
                "'{s}' is not a network address; '{fixed}' is the network it lies in"
            ));
        }
        Ok(c)
    }

    /// Parse a CIDR whose address may have host bits set (route destinations, address pairs); a bare
    /// address is a host route (/32 or /128).
    pub fn parse_loose(s: &str) -> Result<Cidr, String> {
        let bad = || format!("'{s}' is not a valid CIDR");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let (v6, net) = parse_ip(addr).ok_or_else(bad)?;
        let bits = if v6 { 128 } else { 32 };
        let prefix = match prefix {
            Some(p) => {
                if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                p.parse::<u8>().map_err(|_| bad())?
            }
            None => bits,
        };
        if prefix > bits {
            return Err(bad());
        }
        Ok(Cidr { v6, net, prefix })
    }

    pub fn bits(&self) -> u8 {
        if self.v6 {
            128
        } else {
            32
        }
    }

    pub fn ip_version(&self) -> u32 {
        if self.v6 {
            6
        } else {
            4
        }
    }

    fn host_mask(&self) -> u128 {
        let host_bits = u32::from(self.bits() - self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        }
    }

    pub fn first(&self) -> u128 {
        self.net & !self.host_mask()
    }

    pub fn last(&self) -> u128 {
        self.first() | self.host_mask()
    }

    pub fn contains(&self, a: u128) -> bool {
        a >= self.first() && a <= self.last()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.v6 == other.v6 && self.first() <= other.last() && other.first() <= self.last()
    }

    /// The addresses a port may never hold: IPv4's network and broadcast addresses (except in /31 and /32),
    /// IPv6's subnet-router anycast address (the first).
    pub fn is_reserved(&self, a: u128) -> bool {
        if self.v6 {
            a == self.first() && self.prefix < 127
        } else {
            self.prefix < 31 && (a == self.first() || a == self.last())
        }
    }

    /// The usable range: what ports may hold.
    pub fn usable(&self) -> (u128, u128) {
        if self.v6 {
            if self.prefix < 127 {
                (self.first() + 1, self.last())
            } else {
                (self.first(), self.last())
            }
        } else if self.prefix < 31 {
            (self.first() + 1, self.last() - 1)
        } else {
            (self.first(), self.last())
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", fmt_ip(self.first(), self.v6), self.prefix)
    }
}

/// An allocation pool as integers, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u128,
    pub end: u128,
}

/// Why a subnet's address plan is refused; the API maps each to Neutron's fault type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// 400 InvalidInput
    Invalid(String),
    /// 400 InvalidAllocationPool
    InvalidPool(String),
    /// 400 OverlappingAllocationPools
    OverlappingPools(String),
    /// 400 OutOfBoundsAllocationPool
    PoolOutOfBounds(String),
    /// 409 GatewayConflictWithAllocationPools
    GatewayInPool(String),
}

impl PlanError {
    /// `"<NeutronType>: <message>"`, the form the aggregate's errors carry.
    pub fn typed(&self) -> String {
        match self {
            PlanError::Invalid(m) => format!("InvalidInput: {m}"),
            PlanError::InvalidPool(m) => format!("InvalidAllocationPool: {m}"),
            PlanError::OverlappingPools(m) => format!("OverlappingAllocationPools: {m}"),
            PlanError::PoolOutOfBounds(m) => format!("OutOfBoundsAllocationPool: {m}"),
            PlanError::GatewayInPool(m) => format!("GatewayConflictWithAllocationPools: {m}"),
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, PlanError::GatewayInPool(_))
    }
}

/// The pools a subnet gets when none are given: the usable range minus the gateway.
pub fn default_pools(cidr: &Cidr, gateway: Option<u128>) -> Vec<Range> {
    let (lo, hi) = cidr.usable();
    if lo > hi {
        return vec![];
    }
    match gateway {
        Some(g) if g >= lo && g <= hi => {
            let mut out = Vec::new();
            if g > lo {
                out.push(Range {
                    start: lo,
                    end: g - 1,
                });
            }
            if g < hi {
                out.push(Range {
                    start: g + 1,
                    end: hi,
                });
            }
            out
        }
        _ => vec![Range { start: lo, end: hi }],
    }
}

/// Parse pools given as (start, end) text, each an address range of the subnet's version.
pub fn parse_pools(cidr: &Cidr, pools: &[(String, String)]) -> Result<Vec<Range>, PlanError> {
    let mut out = Vec::new();
    for (s, e) in pools {
        let start = parse_ip_of(s, cidr.v6).ok_or_else(|| {
            PlanError::InvalidPool(format!(
                "the pool start '{s}' is not an IPv{} address",
                cidr.ip_version()
            ))
        })?;
        let end = parse_ip_of(e, cidr.v6).ok_or_else(|| {
            PlanError::InvalidPool(format!(
                "the pool end '{e}' is not an IPv{} address",
                cidr.ip_version()
            ))
        })?;
        if start > end {
            return Err(PlanError::InvalidPool(format!(
                "the pool {s}-{e} ends before it starts"
            )));
        }
        out.push(Range { start, end });
    }
    Ok(out)
}

/// Check a subnet's pools and gateway against its CIDR: pools inside the usable range, not overlapping each
/// other, and the gateway (if any) an address of the subnet's version outside every pool.
pub fn validate_plan(cidr: &Cidr, pools: &[Range], gateway: Option<u128>) -> Result<(), PlanError> {
    let (lo, hi) = cidr.usable();
    for p in pools {
        if p.start < lo || p.end > hi {
            return Err(PlanError::PoolOutOfBounds(format!(
                "the pool {}-{} is not inside the usable addresses of {cidr}",
                fmt_ip(p.start, cidr.v6),
                fmt_ip(p.end, cidr.v6)
            )));
        }
    }
    let mut sorted: Vec<Range> = pools.to_vec();
    sorted.sort_by_key(|r| r.start);
    for w in sorted.windows(2) {
        if w[1].start <= w[0].end {
            return Err(PlanError::OverlappingPools(format!(
                "the pools {}-{} and {}-{} overlap",
                fmt_ip(w[0].start, cidr.v6),
                fmt_ip(w[0].end, cidr.v6),
                fmt_ip(w[1].start, cidr.v6),
                fmt_ip(w[1].end, cidr.v6)
            )));
        }
    }
    if let Some(g) = gateway {
        if cidr.is_reserved(g) && cidr.contains(g) {
            return Err(PlanError::Invalid(format!(
                "the gateway {} is not a valid address of {cidr}",
                fmt_ip(g, cidr.v6)
            )));
        }
        if let Some(p) = pools.iter().find(|p| g >= p.start && g <= p.end) {
            return Err(PlanError::GatewayInPool(format!(
                "the gateway {} is inside the allocation pool {}-{}",
                fmt_ip(g, cidr.v6),
                fmt_ip(p.start, cidr.v6),
                fmt_ip(p.end, cidr.v6)
            )));
        }
    }
    Ok(())
}

/// A MAC address in Neutron's text form (lowercase, colon-separated), or None.
pub fn canonical_mac(s: &str) -> Option<String> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut bytes = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        bytes[i] = u8::from_str_radix(p, 16).ok()?;
    }
    // Multicast and all-zero addresses cannot be a port's.
    if bytes[0] & 1 == 1 || bytes == [0; 6] {
        return None;
    }
    Some(fmt_mac(bytes))
}

pub fn fmt_mac(b: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4], b[5]
    )
}

/// Neutron's MAC prefix for the addresses it generates.
pub const MAC_PREFIX: [u8; 3] = [0xfa, 0x16, 0x3e];

/// A generated MAC from three random bytes.
pub fn generated_mac(random: [u8; 3]) -> String {
    fmt_mac([
        MAC_PREFIX[0],
        MAC_PREFIX[1],
        MAC_PREFIX[2],
        random[0],
        random[1],
        random[2],
    ])
}

/// The SLAAC address of a MAC in a /64: the prefix plus the modified EUI-64 interface id.
pub fn eui64(cidr: &Cidr, mac: &str) -> Option<u128> {
    let parts: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    if parts.len() != 6 || !cidr.v6 || cidr.prefix != 64 {
        return None;
    }
    let iid: [u8; 8] = [
        parts[0] ^ 0x02,
        parts[1],
        parts[2],
        0xff,
        0xfe,
        parts[3],
        parts[4],
        parts[5],
    ];
    Some(cidr.first() | u64::from_be_bytes(iid) as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_refuse_host_bits() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        assert_eq!((c.first(), c.last()), (0x0a00_0000, 0x0a00_00ff));
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert!(Cidr::parse("10.0.0.1/24").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0/").is_err());
        assert!(Cidr::parse("banana").is_err());
        assert!(Cidr::parse("10.0.0.0/+4").is_err());
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        assert!(v6.v6);
        assert_eq!(v6.usable().0, v6.first() + 1);
        assert!(Cidr::parse("10.0.0.0/8")
            .unwrap()
            .overlaps(&Cidr::parse("10.1.0.0/16").unwrap()));
        assert!(!c.overlaps(&Cidr::parse("10.0.1.0/24").unwrap()));
        assert!(!c.overlaps(&v6));
        assert_eq!(Cidr::parse_loose("10.0.0.5").unwrap().prefix, 32);
    }

    #[test]
    fn default_pools_leave_out_the_gateway() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        let gw = parse_ip_of("10.0.0.1", false);
        let p = default_pools(&c, gw);
        assert_eq!(p.len(), 1);
        assert_eq!(fmt_ip(p[0].start, false), "10.0.0.2");
        assert_eq!(fmt_ip(p[0].end, false), "10.0.0.254");
        let mid = default_pools(&c, parse_ip_of("10.0.0.100", false));
        assert_eq!(mid.len(), 2);
        assert_eq!(fmt_ip(mid[0].end, false), "10.0.0.99");
        assert_eq!(fmt_ip(mid[1].start, false), "10.0.0.101");
        let none = default_pools(&c, None);
        assert_eq!(fmt_ip(none[0].start, false), "10.0.0.1");
        let v6 = Cidr::parse("2001:db8::/64").unwrap();
        let p6 = default_pools(&v6, parse_ip_of("2001:db8::1", true));
        assert_eq!(fmt_ip(p6[0].start, true), "2001:db8::2");
        assert_eq!(fmt_ip(p6[0].end, true), "2001:db8::ffff:ffff:ffff:ffff");
    }

    #[test]
    fn plans_are_validated() {
        let c = Cidr::parse("10.0.0.0/24").unwrap();
        let pools = |v: &[(&str, &str)]| {
            parse_pools(
                &c,
                &v.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let gw = parse_ip_of("10.0.0.1", false);
        let ok = pools(&[("10.0.0.10", "10.0.0.20"), ("10.0.0.30", "10.0.0.40")]).unwrap();
        assert_eq!(validate_plan(&c, &ok, gw), Ok(()));
        let overlap = pools(&[("10.0.0.10", "10.0.0.20"), ("10.0.0.15", "10.0.0.40")]).unwrap();
        assert!(matches!(
            validate_plan(&c, &overlap, gw),
            Err(PlanError::OverlappingPools(_))
        ));
        let outside = pools(&[("10.0.0.10", "10.0.1.20")]).unwrap();
        assert!(matches!(
            validate_plan(&c, &outside, gw),
            Err(PlanError::PoolOutOfBounds(_))
        ));
        let broadcast = pools(&[("10.0.0.10", "10.0.0.255")]).unwrap();
        assert!(matches!(
            validate_plan(&c, &broadcast, gw),
            Err(PlanError::PoolOutOfBounds(_))
        ));
        let gw_inside = parse_ip_of("10.0.0.15", false);
        let e = validate_plan(&c, &ok, gw_inside).unwrap_err();
        assert!(e.is_conflict(), "{e:?}");
        assert!(matches!(
            pools(&[("10.0.0.20", "10.0.0.10")]),
            Err(PlanError::InvalidPool(_))
        ));
        assert!(matches!(
            pools(&[("2001:db8::1", "10.0.0.10")]),
            Err(PlanError::InvalidPool(_))
        ));
        assert!(matches!(
            validate_plan(&c, &ok, parse_ip_of("10.0.0.0", false)),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn macs() {
        assert_eq!(
            canonical_mac("FA-16-3E-00-AB-01").as_deref(),
            Some("fa:16:3e:00:ab:01")
        );
        assert_eq!(canonical_mac("01:00:5e:00:00:01"), None);
        assert_eq!(canonical_mac("00:00:00:00:00:00"), None);
        assert_eq!(canonical_mac("fa:16:3e:00:ab"), None);
        assert_eq!(generated_mac([1, 2, 3]), "fa:16:3e:01:02:03");
        let c = Cidr::parse("2001:db8::/64").unwrap();
        assert_eq!(
            fmt_ip(eui64(&c, "fa:16:3e:01:02:03").unwrap(), true),
            "2001:db8::f816:3eff:fe01:203"
        );
    }
}
