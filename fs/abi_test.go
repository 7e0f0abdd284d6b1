package fs

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The kernel's layouts (include/uapi/linux/fuse.h), written field by field
// with encoding/binary, padding included, as the reference for the
// hand-written parsers.

type kernelInHeader struct {
	Len, Opcode    uint32
	Unique, NodeID uint64
	UID, GID, PID  uint32
	TotalExtLen    uint16
	Padding        uint16
}

type kernelReadIn struct { // fuse_read_in; fuse_write_in has the same layout
	Fh, Offset      uint64
	Size, ReadFlags uint32
	LockOwner       uint64
	Flags, Padding  uint32
}

type kernelPollIn struct {
	Fh, Kh        uint64
	Flags, Events uint32
}

type kernelOutHeader struct {
	Len    uint32
	Error  int32
	Unique uint64
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, v); err != nil {
		t.Fatalf("binary.Write(%T): %v", v, err)
	}
	return b.Bytes()
}

func TestABISizes(t *testing.T) {
	tests := []struct {
		name string
		got  int
		v    any
	}{
		{"fuse_in_header", inHeaderSize, kernelInHeader{}},
		{"fuse_read_in", readInSize, kernelReadIn{}},
		{"fuse_write_in", writeInSize, kernelReadIn{}},
		{"fuse_poll_in", pollInSize, kernelPollIn{}},
		{"fuse_out_header", outHeaderSize, kernelOutHeader{}},
	}
	for _, tc := range tests {
		if want := binary.Size(tc.v); tc.got != want {
			t.Errorf("size of %s = %d; want %d", tc.name, tc.got, want)
		}
	}
}

func TestParseInHeader(t *testing.T) {
	tests := []kernelInHeader{
		{},
		{Len: 80, Opcode: opRead, Unique: 2, NodeID: 1, UID: 1000, GID: 1000, PID: 4242},
		{Len: 0xffffffff, Opcode: opInterrupt, Unique: 0xfedcba9876543211, NodeID: ^uint64(0), UID: 0xfffffffe, GID: 7, PID: 1, TotalExtLen: 0xabcd, Padding: 0xffff},
	}
	for _, k := range tests {
		b := encode(t, k)
		// Trailing bytes (the request body) must not matter.
		got := parseInHeader(append(b, 0xee, 0xee))
		want := inHeader{Len: k.Len, Opcode: k.Opcode, Unique: k.Unique, NodeID: k.NodeID, UID: k.UID, GID: k.GID, PID: k.PID, ExtLen: k.TotalExtLen}
		if got != want {
			t.Errorf("parseInHeader(%+v) = %+v; want %+v", k, got, want)
		}
	}
}

func TestParseReadIn(t *testing.T) {
	tests := []kernelReadIn{
		{},
		{Fh: 7, Offset: 0, Size: 4096, Flags: 0o4002}, // O_NONBLOCK|O_RDWR
		{Fh: ^uint64(0), Offset: 1 << 40, Size: 1 << 20, ReadFlags: 2, LockOwner: 0x0123456789abcdef, Flags: 0xffffffff, Padding: 0xffffffff},
	}
	for _, k := range tests {
		got := parseReadIn(encode(t, k))
		want := readIn{Fh: k.Fh, Offset: k.Offset, Size: k.Size, ReadFlags: k.ReadFlags, LockOwner: k.LockOwner, Flags: k.Flags}
		if got != want {
			t.Errorf("parseReadIn(%+v) = %+v; want %+v", k, got, want)
		}
	}
}

func TestParsePollIn(t *testing.T) {
	tests := []kernelPollIn{
		{},
		{Fh: 3, Kh: 0xffff8880deadbeef, Flags: pollScheduleNotify, Events: evIn | evRdNorm},
		{Fh: ^uint64(0), Kh: 1, Flags: 0xfffffffe, Events: 0xffffffff},
	}
	for _, k := range tests {
		got := parsePollIn(encode(t, k))
		want := pollIn{Fh: k.Fh, Kh: k.Kh, Flags: k.Flags, Events: k.Events}
		if got != want {
			t.Errorf("parsePollIn(%+v) = %+v; want %+v", k, got, want)
		}
	}
}

func TestPutOutHeader(t *testing.T) {
	tests := []kernelOutHeader{
		{Len: outHeaderSize, Error: 0, Unique: 2},
		{Len: outHeaderSize, Error: -4, Unique: 0x8000000000000001}, // -EINTR
		{Len: outHeaderSize + 8, Error: notifyPoll, Unique: 0},
		{Len: 1<<20 + outHeaderSize, Error: -11, Unique: ^uint64(0)},
	}
	for _, k := range tests {
		got := make([]byte, outHeaderSize)
		putOutHeader(got, k.Len, k.Error, k.Unique)
		if want := encode(t, k); !bytes.Equal(got, want) {
			t.Errorf("putOutHeader(%+v) = %x; want %x", k, got, want)
		}
	}
}
