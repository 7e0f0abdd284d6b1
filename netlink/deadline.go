package netlink

import (
	"net"
	"time"
)

// deadlineConn pushes the connection's deadline forward before reads and
// writes, so that a peer that goes silent (or stops reading) for idle is
// given up rather than waited on forever. Zero idle sets no deadline.
// Moving a deadline costs a timer update, so it is moved only once less
// than idle is left, to idle and a sixteenth ahead: a silent peer is given
// up after idle to idle + idle/16. Reads are made by one goroutine at a
// time, and so are writes.
type deadlineConn struct {
	net.Conn
	idle            time.Duration
	readBy, writeBy time.Time // the deadlines set
}

func (d *deadlineConn) Read(p []byte) (int, error) {
	if d.idle > 0 {
		if now := time.Now(); d.readBy.Sub(now) < d.idle {
			d.readBy = now.Add(d.idle + d.idle/16)
			d.Conn.SetReadDeadline(d.readBy)
		}
	}
	return d.Conn.Read(p)
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.idle > 0 {
		if now := time.Now(); d.writeBy.Sub(now) < d.idle {
			d.writeBy = now.Add(d.idle + d.idle/16)
			d.Conn.SetWriteDeadline(d.writeBy)
		}
	}
	return d.Conn.Write(p)
}
