package netlink

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Defaults for the zero fields of Config.
const (
	// DefaultMaxMessage matches the pipe engine's default max message
	// (1 MiB − 4 KiB, the largest write(2) FUSE always hands over whole).
	DefaultMaxMessage = 1044480
	// MaxMessageLimit is the largest max message the protocol allows.
	MaxMessageLimit         = 1 << 30
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultHelloTimeout: see Config.HelloTimeout.
	DefaultHelloTimeout = 2 * time.Second
	DefaultKeepAlive    = 15 * time.Second
	// DefaultAckEvery: a receiver acknowledges at least every this many
	// messages, and whenever it has read everything that had arrived.
	DefaultAckEvery = 128
	// DefaultMaxUnacked bounds the messages a session holds that the peer
	// has not acknowledged; with credit it bounds a session's memory.
	DefaultMaxUnacked = 1 << 16
)

// Config holds the settings shared by sessions, links and servers. The
// zero value is usable: no secret, no TLS, defaults for the rest.
type Config struct {
	// Secret, when set, must be proved by the peer (and is proved to it)
	// in the handshake. It never crosses the wire.
	Secret []byte
	// TLS, when set, wraps every connection before the handshake: a
	// dialling side is a TLS client, an accepting side a TLS server.
	// LoadTLS builds one.
	TLS *tls.Config
	// MaxMessage is the largest message this side sends or accepts; a
	// connection uses the smaller of both sides' values.
	MaxMessage int
	// Name is the pipe name a dialling side asks a Server for; empty lets
	// the server choose.
	Name string
	// HandshakeTimeout bounds the TLS and pipefs handshakes of one
	// connection, so a peer that connects and says nothing costs only
	// that connection for that long.
	HandshakeTimeout time.Duration
	// HelloTimeout bounds, on an accepting side, how long a new
	// connection may take to deliver its HELLO (the TLS handshake
	// included), so that one that connects and says nothing gives up its
	// handshake slot long before HandshakeTimeout. It is at most
	// HandshakeTimeout.
	HelloTimeout time.Duration
	// KeepAlive is how often an idle connection sends PING; a connection
	// on which nothing arrives for three times as long is dead.
	KeepAlive time.Duration
	// AckEvery and MaxUnacked: see DefaultAckEvery, DefaultMaxUnacked.
	AckEvery   int
	MaxUnacked int
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger

	// hellos is the registry of HELLOs and CHALLENGEs in flight that
	// refuses this process's own relayed back to it; nil means the
	// process's. Tests that play two processes in one give each its own.
	hellos *helloRegistry
}

// withDefaults returns c with its zero fields filled in.
func (c Config) withDefaults() Config {
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	c.MaxMessage = min(c.MaxMessage, MaxMessageLimit)
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	c.HelloTimeout = min(c.HelloTimeout, c.HandshakeTimeout)
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.AckEvery <= 0 {
		c.AckEvery = DefaultAckEvery
	}
	if c.MaxUnacked <= 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// check refuses settings that cannot be put on the wire.
func (c Config) check() error {
	if len(c.Name) > maxNameLen {
		return fmt.Errorf("netlink: name of %d bytes, at most %d", len(c.Name), maxNameLen)
	}
	return nil
}
