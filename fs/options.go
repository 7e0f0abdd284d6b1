package fs

import (
	"crypto/tls"
	"log/slog"
	"time"

	"pipefs/pipe"
)

// Options configure a Server.
type Options struct {
	// Mountpoint is the directory to mount on; it is created if missing.
	Mountpoint string
	// AllowOther lets users other than the one who mounted use the mount
	// (FUSE's allow_other; non-root users need user_allow_other in
	// /etc/fuse.conf).
	AllowOther bool
	// Defaults are the settings of every new pipe.
	Defaults pipe.Settings
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
	// Debug logs every FUSE request at debug level.
	Debug bool
	// Version is reported by the root ctl file.
	Version string
	// Secret is the shared secret TCP links prove by default (a link
	// command's secret=PATH overrides it); nil means none.
	Secret []byte
	// Insecure allows links and listeners off loopback without a secret.
	Insecure bool
	// TLS, when set, encrypts TCP links (see netlink.LoadTLS).
	TLS *tls.Config
	// HandshakeTimeout bounds a TCP link's handshake, so that a peer that
	// connects and says nothing costs its connection only that long (and
	// a BYE's wait for the peer to close); zero means
	// netlink.DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Readers is how many goroutines read requests from the kernel. Two
	// is the measured optimum on small machines: each extra idle reader
	// turns a request into an extra sleep and wake-up. Zero means two.
	Readers int
	// NoIOURing serves every request through /dev/fuse even where the
	// kernel offers FUSE over io_uring (see ring.go).
	NoIOURing bool
}

// maxWrite is the largest request the kernel sends (256 pages, the
// kernel's default limit), negotiated at INIT.
const maxWrite = 1 << 20

// reqBufSize holds the largest request: headers plus maxWrite of data.
const reqBufSize = maxWrite + 4096
