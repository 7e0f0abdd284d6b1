package pipefs_test

import (
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Two daemons as two hosts: each in a network namespace of its own,
// joined by a veth pair, linked over a real (non-loopback) address, so
// with a secret, and used with echo and head as a user would. It needs
// root and iproute2's ip, and skips with the reason where the machine
// cannot make namespaces; PIPEFS_REQUIRE_FUSE does not turn that into a
// failure, since it is about FUSE.
func TestLinkAcrossNetworkNamespaces(t *testing.T) {
	requireFUSE(t)
	ip := requireNetns(t)
	suffix := randomSuffix()
	subnet := fmt.Sprintf("10.199.%d", rand.IntN(256))
	hosts := []*netnsHost{
		{ns: "pipefs-a-" + suffix, veth: "pfa" + suffix, addr: subnet + ".1"},
		{ns: "pipefs-b-" + suffix, veth: "pfb" + suffix, addr: subnet + ".2"},
	}
	// Registered before the mounts, so it runs after they are gone.
	t.Cleanup(func() {
		for _, h := range hosts {
			exec.Command(ip, "netns", "del", h.ns).Run()
		}
		exec.Command(ip, "link", "del", hosts[0].veth).Run() // if never moved
	})
	for _, h := range hosts {
		if out, err := exec.Command(ip, "netns", "add", h.ns).CombinedOutput(); err != nil {
			t.Skipf("cannot make a network namespace here (ip netns add %s: %v: %s)", h.ns, err, strings.TrimSpace(string(out)))
		}
	}
	if out, err := exec.Command(ip, "link", "add", hosts[0].veth, "type", "veth", "peer", "name", hosts[1].veth).CombinedOutput(); err != nil {
		t.Skipf("cannot make a veth pair here (ip link add: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	for _, h := range hosts {
		mustIP(t, ip, "link", "set", h.veth, "netns", h.ns)
		mustIP(t, ip, "-n", h.ns, "addr", "add", h.addr+"/24", "dev", h.veth)
		mustIP(t, ip, "-n", h.ns, "link", "set", h.veth, "up")
		mustIP(t, ip, "-n", h.ns, "link", "set", "lo", "up")
	}

	secret := writeSecret(t, "between-hosts")
	for _, h := range hosts {
		h.m = mountInNetns(t, h.ns)
		h.m.mkdir(t, "p")
	}
	a, b := hosts[0], hosts[1]
	// Both name a's address, as two hosts would; a comes first and so
	// listens, b connects.
	target := a.addr + ":7411"
	for _, h := range hosts {
		h.m.sh(t, `echo "link tcp `+target+` secret=`+secret+`" > "$M/p/ctl"`)
	}
	for _, h := range hosts {
		h.m.waitStatus(t, "p", "link", "tcp "+target+" up")
	}
	if peer := a.m.status(t, "p")["peer"]; !strings.HasPrefix(peer, b.addr+":") {
		t.Errorf("a's peer is %q; want b's address %s, across the veth pair", peer, b.addr)
	}

	a.m.sh(t, `echo hello from a > "$M/p/in"`)
	if got := b.m.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "hello from a\n" {
		t.Fatalf("b read %q; want %q", got, "hello from a\n")
	}
	b.m.sh(t, `echo hello from b > "$M/p/in"`)
	if got := a.m.sh(t, `head -n 1 "$M/p/out" 2>/dev/null`); got != "hello from b\n" {
		t.Fatalf("a read %q; want %q", got, "hello from b\n")
	}
}

// netnsHost is a daemon in a network namespace of its own.
type netnsHost struct {
	ns, veth, addr string
	m              *mount
}

// requireNetns returns the path of ip, or skips the test with the reason
// the machine cannot run it.
func requireNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("iproute2's ip is not installed (apt-get install iproute2)")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter is not installed (util-linux)")
	}
	return ip
}

func mustIP(t *testing.T, ip string, args ...string) {
	t.Helper()
	if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// mountInNetns mounts pipefs with its daemon in network namespace ns.
// nsenter enters only the network namespace, so the mount is made in the
// test's own mount namespace and the test sees it (`ip netns exec` would
// mount in a private one).
func mountInNetns(t *testing.T, ns string) *mount {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "pipefs-in-"+ns)
	script := fmt.Sprintf("#!/bin/sh\nexec nsenter --net=/var/run/netns/%s -- %s \"$@\"\n", ns, pipefsBin)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return mountWith(t, mountOptions{dir: filepath.Join(t.TempDir(), "mnt"), bin: wrapper})
}

// randomSuffix makes names that a concurrent run will not pick.
func randomSuffix() string {
	var b [3]byte
	crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
