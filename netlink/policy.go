package netlink

import (
	"fmt"
	"net"
)

// CheckAddress applies the rule for links without authentication: with
// no secret (and no mutual TLS), pipefs links and listens on this host's
// loopback only, unless the user said insecure. addr is HOST:PORT to dial
// or [HOST]:PORT to listen on. An empty host (every interface) is not
// loopback, and of host names only "localhost" counts: whether another
// name resolves to loopback is up to DNS, which a stranger may control.
func CheckAddress(addr string, authenticated, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if authenticated || insecure || isLoopbackHost(host) {
		return nil
	}
	where := host
	if where == "" {
		where = "every interface"
	}
	return fmt.Errorf("%w: %s is not a loopback address; set a secret (or TLS with a CA), or say insecure", ErrInsecure, where)
}
