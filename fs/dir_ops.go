package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// fileSystem is the fuse.RawFileSystem that go-fuse's ProtocolServer calls
// for every request the loop does not serve itself. Methods it does not
// define answer ENOSYS through the embedded default.
type fileSystem struct {
	fuse.RawFileSystem
	s *Server
}

// Compile-time checks that the overrides have the interface's signatures.
var _ fuse.RawFileSystem = (*fileSystem)(nil)

// The namespace changes only through the kernel, which updates its caches
// itself, so entries and attributes can be cached.
const cacheTimeout = time.Second

const (
	modeDir     = syscall.S_IFDIR | 0o755
	modeIn      = syscall.S_IFREG | 0o222
	modeOut     = syscall.S_IFREG | 0o444
	modePending = syscall.S_IFREG | 0o444
	modeCtl     = syscall.S_IFREG | 0o644
	modeRootCtl = syscall.S_IFREG | 0o444
)

// inSize is the size `in` reports: no smaller than the largest write
// request. A direct-io write that reaches past the reported size takes the
// inode lock exclusively in the kernel, so a writer parked on a full pipe
// would hold every other writer of it; within this size they run in
// parallel (FOPEN_PARALLEL_DIRECT_WRITES).
const inSize = maxWrite

func (s *Server) fillAttr(n *node, a *fuse.Attr) {
	*a = fuse.Attr{Ino: n.ino, Nlink: 1, Blksize: 4096}
	a.Owner = fuse.Owner{Uid: s.uid, Gid: s.gid}
	t := s.tree.mounted
	if n.pn != nil {
		t = n.pn.created
	}
	a.SetTimes(&t, &t, &t)
	switch n.kind {
	case kindRoot:
		a.Mode, a.Nlink = modeDir, 2
	case kindPipeDir:
		a.Mode, a.Nlink = modeDir, 2
	case kindRootCtl:
		a.Mode = modeRootCtl
	case kindIn:
		a.Mode, a.Size = modeIn, inSize
	case kindOut:
		a.Mode = modeOut
	case kindPending:
		a.Mode = modePending
	case kindCtl:
		a.Mode = modeCtl
	}
}

func (s *Server) fillEntry(n *node, out *fuse.EntryOut) {
	out.NodeId = n.ino
	out.Generation = 1
	if n.fresh {
		out.SetEntryTimeout(0) // see node.fresh in tree.go
	} else {
		out.SetEntryTimeout(cacheTimeout)
	}
	out.SetAttrTimeout(cacheTimeout)
	s.fillAttr(n, &out.Attr)
}

func (fs *fileSystem) String() string { return "pipefs" }

func (fs *fileSystem) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	n, errno := fs.s.tree.lookup(header.NodeId, name)
	if errno != 0 {
		return status(errno)
	}
	fs.s.fillEntry(n, out)
	return fuse.OK
}

func (fs *fileSystem) Forget(nodeid, nlookup uint64) {
	fs.s.tree.forget(nodeid, nlookup)
}

func (fs *fileSystem) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := fs.s.tree.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	fs.s.fillAttr(n, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

// SetAttr accepts what shell redirections and touch ask for (truncation,
// from O_TRUNC, and times) and changes nothing; modes and owners are fixed.
func (fs *fileSystem) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	n := fs.s.tree.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		return fuse.EPERM
	}
	fs.s.fillAttr(n, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

func (fs *fileSystem) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if in.NodeId != rootIno {
		return fuse.EPERM // pipes live in the root only
	}
	n, errno := fs.s.tree.create(name, fs.s.opts.Defaults)
	if errno != 0 {
		return status(errno)
	}
	fs.s.log.Debug("pipe created", "pipe", name)
	fs.s.fillEntry(n, out)
	return fuse.OK
}

func (fs *fileSystem) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	if header.NodeId != rootIno {
		return fuse.ENOTDIR
	}
	pn, errno := fs.s.tree.remove(name)
	if errno != 0 {
		return status(errno)
	}
	fs.s.linkMu.Lock()
	fs.s.unlinkLocked(pn)
	fs.s.linkMu.Unlock()
	pn.p.Close()
	fs.s.log.Debug("pipe removed", "pipe", name)
	return fuse.OK
}

func (fs *fileSystem) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	const renameNoReplace, renameExchange = 1, 2
	if in.NodeId != rootIno || in.Newdir != rootIno {
		return fuse.EPERM // the files of a pipe stay where they are
	}
	if oldName == nameCtl {
		return fuse.EPERM // the root's control file stays
	}
	if in.Flags&renameExchange != 0 {
		return fuse.EINVAL
	}
	if in.Flags&renameNoReplace != 0 && oldName != newName {
		if n, errno := fs.s.tree.lookup(rootIno, newName); errno == 0 {
			fs.s.tree.forget(n.ino, 1)
			return fuse.Status(syscall.EEXIST)
		}
	}
	return status(fs.s.tree.rename(oldName, newName))
}

// Files cannot be made or removed: a pipe directory holds exactly its four.
func (fs *fileSystem) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}

func (fs *fileSystem) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	if _, errno := fs.s.tree.lookupNoRef(header.NodeId, name); errno != 0 {
		return status(errno)
	}
	return fuse.EPERM
}

func (fs *fileSystem) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}

func (fs *fileSystem) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}

func (fs *fileSystem) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return fuse.OK // mounted with default_permissions: the kernel checks modes
}

func (fs *fileSystem) StatFs(cancel <-chan struct{}, header *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255, Files: uint64(fs.s.tree.count())}
	return fuse.OK
}

// dirHandle holds a directory listing taken at OPENDIR, so that a listing
// read in several READDIR requests is consistent.
type dirHandle struct {
	entries []fuse.DirEntry
}

func (fs *fileSystem) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	n := fs.s.tree.node(in.NodeId)
	if n == nil {
		return fuse.ENOENT
	}
	dh := &dirHandle{entries: []fuse.DirEntry{
		{Name: ".", Mode: syscall.S_IFDIR, Ino: n.ino},
		{Name: "..", Mode: syscall.S_IFDIR, Ino: rootIno},
	}}
	switch n.kind {
	case kindRoot:
		dh.entries = append(dh.entries, fuse.DirEntry{Name: nameCtl, Mode: syscall.S_IFREG, Ino: rootCtlIno})
		for _, name := range fs.s.tree.list() {
			if c, errno := fs.s.tree.lookupNoRef(rootIno, name); errno == 0 {
				dh.entries = append(dh.entries, fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: c.ino})
			}
		}
	case kindPipeDir:
		for _, f := range pipeFiles {
			dh.entries = append(dh.entries, fuse.DirEntry{Name: f.name, Mode: syscall.S_IFREG, Ino: n.pn.fileIno(f.kind)})
		}
	default:
		return fuse.ENOTDIR
	}
	out.Fh = fs.s.dirs.add(dh)
	return fuse.OK
}

func (fs *fileSystem) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	dh := fs.s.dirs.get(in.Fh)
	if dh == nil {
		return fuse.EBADF
	}
	for i := int(in.Offset); i < len(dh.entries); i++ {
		if !out.AddDirEntry(dh.entries[i]) {
			break
		}
	}
	return fuse.OK
}

func (fs *fileSystem) ReleaseDir(in *fuse.ReleaseIn) {
	fs.s.dirs.remove(in.Fh)
}

func (fs *fileSystem) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return fuse.OK
}
