package fs

import (
	"errors"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"pipefs/pipe"
)

// errnoOf maps an engine error to the errno a file operation returns.
func errnoOf(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pipe.ErrWouldBlock):
		return syscall.EAGAIN
	case errors.Is(err, pipe.ErrTooBig):
		return syscall.EMSGSIZE
	case errors.Is(err, pipe.ErrClosed):
		return syscall.EPIPE
	case errors.Is(err, pipe.ErrInvalid):
		return syscall.EINVAL
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

func status(errno syscall.Errno) fuse.Status { return fuse.Status(errno) }
