package fetch

import "net/netip"

// notGlobal4 are the IPv4 blocks of the IANA special-purpose registry (RFC
// 6890 and later) that are not reachable on the internet, plus multicast
// and the reserved block.
var notGlobal4 = prefixes(
	"0.0.0.0/8",       // "this network", the unspecified address
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata services
	"172.16.0.0/12",   // private (RFC 1918)
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // 6to4 relay anycast, deprecated
	"192.168.0.0/16",  // private (RFC 1918)
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and the limited broadcast address
)

// global6 is IPv6 global unicast; everything outside it (loopback,
// unspecified, link-local, unique local fc00::/7, multicast, IPv4-mapped
// and -compatible forms, discard-only) is refused, except NAT64 below.
var global6 = netip.MustParsePrefix("2000::/3")

// notGlobal6 are the blocks inside 2000::/3 that are not plain internet
// addresses.
var notGlobal6 = prefixes(
	"2001::/23",     // IETF protocol assignments, Teredo (2001::/32) among them
	"2001:db8::/32", // documentation
	"2002::/16",     // 6to4, which embeds an IPv4 address
	"3fff::/20",     // documentation (RFC 9637)
)

// nat64 is the well-known NAT64 prefix (RFC 6052): in an IPv6-only cluster
// with DNS64 every IPv4 host is reached through it, so the IPv4 address it
// embeds decides.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// IsGlobal reports whether a is an address on the public internet: not
// loopback, link-local, private (RFC 1918, RFC 4193 fc00::/7), carrier-grade
// NAT (100.64.0.0/10), unspecified, multicast, documentation, benchmarking or
// reserved. It is the default of Options.AllowAddr.
func IsGlobal(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	switch {
	case !a.IsValid():
		return false
	case a.Is4():
		return !containsAny(notGlobal4, a)
	case nat64.Contains(a):
		b := a.As16()
		return IsGlobal(netip.AddrFrom4([4]byte(b[12:])))
	case !global6.Contains(a):
		return false
	default:
		return !containsAny(notGlobal6, a)
	}
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
