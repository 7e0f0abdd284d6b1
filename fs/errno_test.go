package fs

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"pipefs/pipe"
)

func TestErrnoOf(t *testing.T) {
	tests := []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{pipe.ErrWouldBlock, syscall.EAGAIN},
		{pipe.ErrTooBig, syscall.EMSGSIZE},
		{pipe.ErrClosed, syscall.EPIPE},
		{pipe.ErrInvalid, syscall.EINVAL},
		{pipe.ErrUnknownCommand, syscall.EINVAL},
		{fmt.Errorf("%w %q", pipe.ErrUnknownCommand, "frob"), syscall.EINVAL},
		{fmt.Errorf("writing: %w", pipe.ErrTooBig), syscall.EMSGSIZE},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", pipe.ErrClosed)), syscall.EPIPE},
		{errors.Join(errors.New("other"), pipe.ErrWouldBlock), syscall.EAGAIN},
		{syscall.ENOENT, syscall.ENOENT},
		{fmt.Errorf("open: %w", syscall.EACCES), syscall.EACCES},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EEXIST}, syscall.EEXIST},
		{errors.New("something else"), syscall.EIO},
		{pipe.ErrParked, syscall.EIO}, // never an answer
	}
	for _, tc := range tests {
		if got := errnoOf(tc.err); got != tc.want {
			t.Errorf("errnoOf(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	// Every settings refusal of the engine is EINVAL.
	for _, cmd := range []string{"mode sideways", "capacity 0", "maxmessage 1G", "batch maybe", "frob"} {
		_, err := pipe.DefaultSettings().Apply(cmd)
		if got := errnoOf(err); got != syscall.EINVAL {
			t.Errorf("errnoOf(Apply(%q) = %v) = %v; want EINVAL", cmd, err, got)
		}
	}
}
