package netlink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pipefs test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	writePEM(t, filepath.Join(ca.dir, "ca.pem"), "CERTIFICATE", der)
	return ca
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue makes a certificate for 127.0.0.1 and returns its cert and key
// file paths.
func (ca *testCA) issue(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", kder)
	return certFile, keyFile
}

func (ca *testCA) config(t *testing.T, name string) *tls.Config {
	t.Helper()
	cert, key := ca.issue(t, name)
	cfg, err := LoadTLS(cert, key, filepath.Join(ca.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !MutualTLS(cfg) {
		t.Fatal("LoadTLS with a CA is not mutual TLS")
	}
	return cfg
}

// A rendezvous over mutual TLS works; a peer whose certificate another CA
// signed is refused and never sees a message.
func TestTLSRendezvous(t *testing.T) {
	checkLeaks(t)
	ca := newTestCA(t)
	addr := freeAddr(t)
	ea, eb := newMemEndpoint(1<<20), newMemEndpoint(1<<20)
	mk := func(ep Endpoint, tc *tls.Config) *Link {
		cfg := fastLink(t, ep)
		cfg.TLS = tc
		cfg.Rendezvous = &Rendezvous{Addr: addr, Window: time.Second}
		l, err := NewLink(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := mk(ea, ca.config(t, "a"))
	startLink(t, a)
	waitState(t, a, StateListening)

	// A stranger with a certificate from another CA.
	other := newTestCA(t)
	es := newMemEndpoint(1 << 20)
	stranger := mk(es, other.config(t, "stranger"))
	es.sendN("s", 3)
	startLink(t, stranger)
	waitFor(t, "the stranger to fail a TLS handshake", func() bool {
		return strings.Contains(stranger.Stats().Reason, "TLS")
	})
	stranger.Close()

	b := mk(eb, ca.config(t, "b"))
	startLink(t, b)
	ea.sendN("a", 20)
	eb.sendN("b", 20)
	eb.expectN(t, "a", 0, 20)
	ea.expectN(t, "b", 0, 20)
	if _, _, in := ea.counts(); in != 0 {
		t.Errorf("a received %d messages beyond b's", in)
	}
	if _, taken, _ := es.counts(); taken != 0 {
		t.Errorf("the stranger sent %d messages", taken)
	}
}

func TestLoadTLSErrors(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, "x")
	tests := []struct {
		name              string
		cert, key, caFile string
		want              string
	}{
		{"no key", cert, "", "", "both a certificate and a key"},
		{"missing cert", filepath.Join(ca.dir, "nope.pem"), key, "", "no such file"},
		{"missing CA", cert, key, filepath.Join(ca.dir, "nope.pem"), "no such file"},
		{"CA without certs", cert, key, key, "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadTLS(tt.cert, tt.key, tt.caFile)
			mustContain(t, err, tt.want)
		})
	}
	cfg, err := LoadTLS(cert, key, "")
	if err != nil || MutualTLS(cfg) {
		t.Fatalf("LoadTLS without CA = %v, %v; want a config that is not mutual", cfg, err)
	}
}
