package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Open flags of the pipe files. `in` and `out` are streams: direct I/O so
// every read(2) and write(2) reaches the daemon, non-seekable, and
// FOPEN_STREAM so that the kernel neither serialises calls on one
// descriptor nor keeps a file position (see stream.go). `in` also takes
// FOPEN_PARALLEL_DIRECT_WRITES so that a writer parked on a full pipe does
// not hold the inode lock against the others (see inSize).
const (
	openStream = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NONSEEKABLE | fuse.FOPEN_STREAM
	openIn     = openStream | fuse.FOPEN_PARALLEL_DIRECT_WRITES
	openText   = fuse.FOPEN_DIRECT_IO // ctl and pending: fresh content, seekable
)

func (fs *fileSystem) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.s.tree.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	fh, flags, errno := fs.s.open(n, in.Flags)
	if errno != 0 {
		return status(errno)
	}
	out.Fh, out.OpenFlags = fh, flags
	return fuse.OK
}

// Create is how the kernel opens a file with O_CREAT when the name is not
// in its cache (shell `>` and Python's open(..., "w") do that): an
// existing pipe file is opened; new files cannot be made.
func (fs *fileSystem) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	n, errno := fs.s.tree.lookup(in.NodeId, name)
	if errno == syscall.ENOENT {
		return fuse.EPERM
	}
	if errno != 0 {
		return status(errno)
	}
	if in.Flags&syscall.O_EXCL != 0 {
		fs.s.tree.forget(n.ino, 1)
		return fuse.Status(syscall.EEXIST)
	}
	if n.kind == kindPipeDir || n.kind == kindRoot {
		fs.s.tree.forget(n.ino, 1)
		return fuse.Status(syscall.EISDIR)
	}
	fh, flags, errno := fs.s.open(n, in.Flags)
	if errno != 0 {
		fs.s.tree.forget(n.ino, 1)
		return status(errno)
	}
	fs.s.fillEntry(n, &out.EntryOut)
	out.OpenOut.Fh, out.OpenOut.OpenFlags = fh, flags
	return fuse.OK
}

// open makes a handle for node n opened with flags.
func (s *Server) open(n *node, flags uint32) (uint64, uint32, syscall.Errno) {
	acc := flags & syscall.O_ACCMODE
	h := &handle{kind: n.kind, pn: n.pn, srv: s}
	var openFlags uint32
	switch n.kind {
	case kindIn:
		if acc == syscall.O_RDONLY {
			return 0, 0, syscall.EACCES
		}
		h.writer = n.pn.p.NewWriter()
		openFlags = openIn
	case kindOut:
		if acc == syscall.O_WRONLY {
			return 0, 0, syscall.EACCES
		}
		h.reader = n.pn.p.NewReader()
		openFlags = openStream
	case kindPending, kindRootCtl:
		if acc != syscall.O_RDONLY {
			return 0, 0, syscall.EACCES
		}
		openFlags = openText
	case kindCtl:
		openFlags = openText
	default:
		return 0, 0, syscall.EISDIR
	}
	if n.pn != nil {
		// A pipe removed between lookup and open is gone.
		s.tree.mu.Lock()
		removed := n.pn.removed
		s.tree.mu.Unlock()
		if removed {
			return 0, 0, syscall.ENOENT
		}
	}
	return s.handles.add(h), openFlags, 0
}

// Flush runs at every close(2) of a descriptor of the file, before close
// returns. Ending a writer here rather than at RELEASE (which the kernel
// sends asynchronously, after close has returned) makes an unterminated
// line a message by the time `printf x > in` finishes, and returns a partly
// read message to the queue before `head -c 3 out` exits.
func (fs *fileSystem) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if h := fs.s.handles.get(in.Fh); h != nil {
		h.finish()
	}
	return fuse.OK
}

func (fs *fileSystem) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	if h := fs.s.handles.remove(in.Fh); h != nil {
		h.finish()
		if h.watching.Load() {
			h.pn.p.Unwatch(h)
		}
	}
}

// finish completes the writer's tail and returns a reader's partly read
// message; the handle stays usable (another descriptor may share it).
func (h *handle) finish() {
	if h.writer != nil {
		h.writer.Close()
	}
	if h.reader != nil {
		h.reader.Close()
	}
}

func (fs *fileSystem) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return fuse.OK
}
