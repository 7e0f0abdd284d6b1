package fs

import (
	"sync"
	"sync/atomic"

	"pipefs/pipe"
)

// handle is one open file (the kernel's struct file); its number is the
// FUSE file handle.
type handle struct {
	fh   uint64
	kind nodeKind
	pn   *pipeNode // nil for the root's ctl
	srv  *Server

	reader *pipe.Reader // `out`
	writer *pipe.Writer // `in`

	// kh is the kernel's poll handle for this open file, set by the first
	// POLL that asks for notification. The kernel keeps the file on its
	// list of polled files until release (epoll polls with a notify
	// request only once, when the file is added), so the watch stays
	// armed for the life of the handle.
	kh       atomic.Uint64
	watching atomic.Bool

	// snapMu guards snap: the content of a ctl or pending file, taken
	// by a read at offset 0 and served to the reads that follow it.
	snapMu sync.Mutex
	snap   []byte
}

// Wake implements pipe.Watcher: it tells the kernel to poll this file again.
func (h *handle) Wake() {
	h.srv.notifyPoll(h.kh.Load())
}

// table maps handle numbers to open files or directories. Numbers are
// never reused while the mount lives.
type table[T any] struct {
	m    sync.Map // uint64 -> *T
	next atomic.Uint64
}

func (t *table[T]) add(v *T) uint64 {
	fh := t.next.Add(1)
	t.m.Store(fh, v)
	return fh
}

func (t *table[T]) get(fh uint64) *T {
	v, ok := t.m.Load(fh)
	if !ok {
		return nil
	}
	return v.(*T)
}

func (t *table[T]) remove(fh uint64) *T {
	v, ok := t.m.LoadAndDelete(fh)
	if !ok {
		return nil
	}
	return v.(*T)
}
