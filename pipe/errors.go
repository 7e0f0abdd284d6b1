package pipe

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the engine. Callers map them to errnos.
var (
	// ErrWouldBlock: a non-blocking read found no message, or a
	// non-blocking write found no room.
	ErrWouldBlock = errors.New("pipe: operation would block")
	// ErrParked: the request was parked and will be completed later
	// through its notifier.
	ErrParked = errors.New("pipe: request parked")
	// ErrTooBig: a message is larger than the pipe's max message size.
	ErrTooBig = errors.New("pipe: message too large")
	// ErrClosed: the pipe was destroyed.
	ErrClosed = errors.New("pipe: closed")
	// ErrInvalid: a malformed or refused command or setting.
	ErrInvalid = errors.New("pipe: invalid argument")
)

// ErrUnknownCommand: a ctl command this package does not handle. It wraps
// ErrInvalid, so an unknown command that nobody else handles is invalid.
var ErrUnknownCommand error = &invalidError{"unknown command"}

// invalidError is a refusal whose message is only its reason, so that it
// reads well in a ctl status line or a CLI error; it matches ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

// Invalidf returns a refusal that reads as its reason and matches
// ErrInvalid.
func Invalidf(format string, args ...any) error {
	return invalidf(format, args...)
}

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}
