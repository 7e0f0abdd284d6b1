package pipe

import (
	"fmt"
	"strconv"
	"strings"
)

// Mode is how the bytes written to a pipe's `in` file are cut into messages.
type Mode uint8

const (
	// Lines makes every '\n'-terminated line one message.
	Lines Mode = iota
	// Packets makes every write(2) one message, binary-safe.
	Packets
)

func (m Mode) String() string {
	if m == Packets {
		return "packets"
	}
	return "lines"
}

// ParseMode parses "lines" or "packets".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "lines":
		return Lines, nil
	case "packets":
		return Packets, nil
	}
	return 0, invalidf("mode %q: want lines or packets", s)
}

const (
	// DefaultCapacity is how many bytes of messages a pipe holds by default.
	DefaultCapacity = 8 << 20
	// MaxPacket is the largest message size in packets mode, and the
	// default max message size. With a negotiated FUSE max_write of 1 MiB
	// it is the largest write(2) that Linux always hands the filesystem
	// as a single request, whatever the alignment of the caller's buffer
	// (an unaligned 1 MiB write arrives as two requests). So in packets
	// mode one write(2) is always exactly one request and one message.
	MaxPacket = 1<<20 - 4<<10
	// DefaultMaxMessage is the default max message size.
	DefaultMaxMessage = MaxPacket
	// MaxCapacity bounds the capacity setting (1 TiB), so that sizes
	// never overflow the accounting.
	MaxCapacity = 1 << 40
)

// Settings are a pipe's tunables.
type Settings struct {
	Mode       Mode
	Capacity   int64 // bytes of waiting messages before writers wait
	MaxMessage int64 // largest single message
	Batch      bool  // reads return as many whole messages as fit
}

// DefaultSettings returns the settings a new pipe starts with.
func DefaultSettings() Settings {
	return Settings{Mode: Lines, Capacity: DefaultCapacity, MaxMessage: DefaultMaxMessage}
}

// Validate reports whether the settings are consistent.
func (s Settings) Validate() error {
	switch {
	case s.Capacity < 1 || s.Capacity > MaxCapacity:
		return invalidf("capacity %d out of range 1..%d", s.Capacity, int64(MaxCapacity))
	case s.MaxMessage < 1:
		return invalidf("maxmessage %d must be at least 1", s.MaxMessage)
	case s.MaxMessage > s.Capacity:
		return invalidf("maxmessage %d exceeds capacity %d", s.MaxMessage, s.Capacity)
	case s.Mode == Packets && s.MaxMessage > MaxPacket:
		return invalidf("maxmessage %d exceeds %d, the largest packet", s.MaxMessage, MaxPacket)
	case s.Mode == Packets && s.Batch:
		return invalidf("batch reads would lose packet boundaries")
	}
	return nil
}

// ParseSize parses a byte count with an optional K, M or G suffix (powers
// of 1024, case-insensitive, an optional trailing "B" or "iB" allowed).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	// "iB" only follows a K, M or G: "1Ki" and "1iB" are not sizes.
	if u, ok := strings.CutSuffix(t, "IB"); ok && u != "" && strings.IndexByte("KMG", u[len(u)-1]) >= 0 {
		t = u
	} else {
		t = strings.TrimSuffix(t, "B")
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || t == "" || t[0] == '+' || t[0] == '-' {
		return 0, invalidf("size %q: want a whole number of bytes with an optional K, M or G suffix", s)
	}
	if v > MaxCapacity/mult {
		return 0, invalidf("size %q too large", s)
	}
	return v * mult, nil
}

// Apply returns the settings changed by one ctl command (without its
// trailing newline), or an error wrapping ErrInvalid that says why the
// command was refused. Commands it does not know are reported with
// ErrUnknownCommand so that callers can offer them elsewhere.
func (s Settings) Apply(cmd string) (Settings, error) {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return s, nil
	}
	arg := func() (string, error) {
		if len(f) != 2 {
			return "", invalidf("%q takes one argument", f[0])
		}
		return f[1], nil
	}
	n := s
	switch f[0] {
	case "mode":
		a, err := arg()
		if err != nil {
			return s, err
		}
		if n.Mode, err = ParseMode(a); err != nil {
			return s, err
		}
		if n.Mode == Packets && n.Batch {
			return s, invalidf("mode packets: turn batch off first (batch reads would lose packet boundaries)")
		}
		if n.Mode == Packets && n.MaxMessage > MaxPacket {
			n.MaxMessage = MaxPacket
		}
	case "capacity":
		a, err := arg()
		if err != nil {
			return s, err
		}
		v, err := ParseSize(a)
		if err != nil {
			return s, err
		}
		if v < 1 {
			return s, invalidf("capacity must be at least 1 byte")
		}
		n.Capacity = v
		// A message can never be larger than the queue that holds it.
		n.MaxMessage = min(n.MaxMessage, v)
	case "maxmessage":
		a, err := arg()
		if err != nil {
			return s, err
		}
		v, err := ParseSize(a)
		if err != nil {
			return s, err
		}
		n.MaxMessage = v
	case "batch":
		a, err := arg()
		if err != nil {
			return s, err
		}
		switch a {
		case "on":
			n.Batch = true
		case "off":
			n.Batch = false
		default:
			return s, invalidf("batch %q: want on or off", a)
		}
	default:
		return s, fmt.Errorf("%w %q", ErrUnknownCommand, f[0])
	}
	if err := n.Validate(); err != nil {
		return s, err
	}
	return n, nil
}
