package netlink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// LoadTLS builds the TLS configuration of links and servers from PEM
// files. certFile and keyFile are this side's certificate and key, shown
// to the peer in either role (a rendezvous may end up dialling or
// accepting). caFile, if not empty, holds the certificates that sign the
// peers': both sides must then present one (mutual TLS), which
// authenticates the link as a shared secret does. Without caFile a
// dialling side checks the server against the system's roots and servers
// do not ask for client certificates.
//
// A dialling side checks the server's certificate against the host it
// dials: set ServerName on the result for a Link with Dial (a rendezvous
// sets it from its address).
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA: no certificate in %s", caFile)
		}
		cfg.RootCAs, cfg.ClientCAs = pool, pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// MutualTLS reports whether cfg makes both sides prove their identity,
// which counts as authentication for CheckAddress.
func MutualTLS(cfg *tls.Config) bool {
	return cfg != nil && cfg.ClientAuth == tls.RequireAndVerifyClientCert && cfg.ClientCAs != nil && cfg.RootCAs != nil
}
