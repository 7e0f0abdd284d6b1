package fs

import (
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pipefs/netlink"
	"pipefs/pipe"
)

type nodeKind uint8

const (
	kindRoot nodeKind = iota
	kindRootCtl
	kindPipeDir
	kindIn
	kindOut
	kindPending
	kindCtl
)

// Names of the files in a pipe directory, and of the root's control file.
const (
	nameIn      = "in"
	nameOut     = "out"
	namePending = "pending"
	nameCtl     = "ctl"
)

var pipeFiles = [...]struct {
	name string
	kind nodeKind
}{{nameIn, kindIn}, {nameOut, kindOut}, {namePending, kindPending}, {nameCtl, kindCtl}}

// Why `in` gets a new inode at every lookup:
//
// The kernel holds a file's inode lock while it serves a direct-I/O write:
// shared with FOPEN_PARALLEL_DIRECT_WRITES, exclusive for O_APPEND. A write
// parked on a full pipe holds it until it gets room, and an exclusive
// taker — the truncation of an O_TRUNC open (shell `>`), touch, a `>>`
// write — would wait for it uninterruptibly. With an inode per open file
// instead of per pipe, writers of different opens never share that lock:
// `echo x > in` cannot hang behind another writer, and `>>` writers of
// different opens are not serialised. The entry is never cached (timeout
// 0), so every path walk looks `in` up again and gets its own inode.

const (
	rootIno    = 1
	rootCtlIno = 2
	// Each pipe takes inodeStride numbers: its directory, then its files
	// in pipeFiles order. Numbers are never reused.
	inodeStride = 8
)

// node is one inode the kernel may hold.
type node struct {
	ino     uint64
	kind    nodeKind
	pn      *pipeNode // nil for the root and its ctl
	lookups uint64    // references the kernel holds (LOOKUP minus FORGET)
	fresh   bool      // made for one lookup; goes when forgotten
}

// pipeNode is one pipe directory.
type pipeNode struct {
	p       *pipe.Pipe
	dirIno  uint64
	created time.Time

	// guarded by tree.mu
	name    string
	removed bool

	ctlMu   sync.Mutex
	lastErr string // reason of the last refused ctl command

	link *link // guarded by Server.linkMu
	// tcpLink is link.tcp, readable without the lock: a write to `in`
	// reconnects a link that was told to disconnect.
	tcpLink atomic.Pointer[netlink.Link]
}

func (pn *pipeNode) fileIno(k nodeKind) uint64 {
	return pn.dirIno + uint64(k-kindPipeDir)
}

// tree is the namespace: the root, its ctl file and the pipe directories.
type tree struct {
	mu      sync.Mutex
	nodes   map[uint64]*node
	pipes   map[string]*pipeNode
	nextIno uint64
	mounted time.Time
	closed  bool // shutting down: no new pipes
}

func newTree() *tree {
	t := &tree{
		nodes:   make(map[uint64]*node),
		pipes:   make(map[string]*pipeNode),
		nextIno: 16,
		mounted: time.Now(),
	}
	t.nodes[rootIno] = &node{ino: rootIno, kind: kindRoot, lookups: 1}
	t.nodes[rootCtlIno] = &node{ino: rootCtlIno, kind: kindRootCtl}
	return t
}

func (t *tree) node(ino uint64) *node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[ino]
}

// lookup finds name in directory parent and counts a kernel reference.
func (t *tree) lookup(parent uint64, name string) (*node, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := t.nodes[parent]
	if dir == nil {
		return nil, syscall.ENOENT
	}
	var n *node
	switch dir.kind {
	case kindRoot:
		if name == nameCtl {
			n = t.nodes[rootCtlIno]
		} else if pn := t.pipes[name]; pn != nil {
			n = t.nodes[pn.dirIno]
		}
	case kindPipeDir:
		if dir.pn.removed {
			return nil, syscall.ENOENT
		}
		if name == nameIn {
			// Every lookup of `in` is a new inode; see freshInode.
			n = &node{ino: t.nextIno, kind: kindIn, pn: dir.pn, fresh: true}
			t.nextIno++
			t.nodes[n.ino] = n
			break
		}
		for _, f := range pipeFiles {
			if f.name == name {
				ino := dir.pn.fileIno(f.kind)
				if n = t.nodes[ino]; n == nil {
					n = &node{ino: ino, kind: f.kind, pn: dir.pn}
					t.nodes[ino] = n
				}
			}
		}
	default:
		return nil, syscall.ENOTDIR
	}
	if n == nil {
		return nil, syscall.ENOENT
	}
	n.lookups++
	return n, 0
}

// forget drops kernel references; a node of a removed pipe goes when the
// kernel holds none.
func (t *tree) forget(ino, count uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nodes[ino]
	if n == nil {
		return
	}
	n.lookups -= min(count, n.lookups)
	if n.lookups == 0 && n.pn != nil && (n.pn.removed || n.fresh) {
		delete(t.nodes, ino)
	}
}

// create makes a new pipe.
func (t *tree) create(name string, s pipe.Settings) (*node, syscall.Errno) {
	if errno := checkPipeName(name); errno != 0 {
		return nil, errno
	}
	p, err := pipe.New(name, s)
	if err != nil {
		return nil, syscall.EINVAL
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, syscall.ESHUTDOWN
	}
	if _, ok := t.pipes[name]; ok {
		return nil, syscall.EEXIST
	}
	pn := &pipeNode{p: p, dirIno: t.nextIno, created: time.Now(), name: name}
	t.nextIno += inodeStride
	t.pipes[name] = pn
	n := &node{ino: pn.dirIno, kind: kindPipeDir, pn: pn, lookups: 1}
	t.nodes[n.ino] = n
	return n, 0
}

func checkPipeName(name string) syscall.Errno {
	switch {
	case name == nameCtl:
		return syscall.EEXIST // reserved for the root's control file
	case name == "" || name == "." || name == "..":
		return syscall.EINVAL
	case len(name) > 255:
		return syscall.ENAMETOOLONG
	}
	return 0
}

// remove takes a pipe out of the namespace and returns it for destruction.
func (t *tree) remove(name string) (*pipeNode, syscall.Errno) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pn := t.pipes[name]
	if pn == nil {
		if name == nameCtl {
			return nil, syscall.ENOTDIR
		}
		return nil, syscall.ENOENT
	}
	delete(t.pipes, name)
	pn.removed = true
	for ino := pn.dirIno; ino < pn.dirIno+inodeStride; ino++ {
		if n := t.nodes[ino]; n != nil && n.lookups == 0 {
			delete(t.nodes, ino)
		}
	}
	return pn, 0
}

// rename moves pipe oldName to newName. With noReplace an existing target
// is an error; otherwise a target pipe is not empty, so it is refused like
// rename(2) refuses a non-empty directory.
func (t *tree) rename(oldName, newName string) syscall.Errno {
	if errno := checkPipeName(newName); errno != 0 {
		return errno
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pn := t.pipes[oldName]
	if pn == nil {
		return syscall.ENOENT
	}
	if oldName == newName {
		return 0
	}
	if _, ok := t.pipes[newName]; ok {
		return syscall.ENOTEMPTY
	}
	delete(t.pipes, oldName)
	t.pipes[newName] = pn
	pn.name = newName
	pn.p.SetName(newName)
	return 0
}

// list returns the pipe names, sorted.
func (t *tree) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.pipes))
	for name := range t.pipes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func (t *tree) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pipes)
}

// all returns every live pipe.
func (t *tree) all() []*pipeNode {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.allLocked()
}

// closeAll marks the tree closed, so that no pipe can be made any more, and
// returns every pipe for destruction.
func (t *tree) closeAll() []*pipeNode {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return t.allLocked()
}

func (t *tree) allLocked() []*pipeNode {
	out := make([]*pipeNode, 0, len(t.pipes))
	for _, pn := range t.pipes {
		out = append(out, pn)
	}
	return out
}

// lookupNoRef finds a node without counting a kernel reference.
func (t *tree) lookupNoRef(parent uint64, name string) (*node, syscall.Errno) {
	n, errno := t.lookup(parent, name)
	if errno == 0 {
		t.forget(n.ino, 1)
	}
	return n, errno
}
