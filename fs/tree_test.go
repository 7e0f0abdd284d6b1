package fs

import (
	"slices"
	"strings"
	"syscall"
	"testing"

	"pipefs/pipe"
)

// newTestTree returns a tree holding the named pipes, with default settings.
func newTestTree(t *testing.T, names ...string) *tree {
	t.Helper()
	tr := newTree()
	for _, name := range names {
		if _, errno := tr.create(name, pipe.DefaultSettings()); errno != 0 {
			t.Fatalf("create(%q) = %v; want success", name, errno)
		}
	}
	return tr
}

// lookupsOf returns the kernel references counted on ino, and whether the
// node exists at all.
func lookupsOf(tr *tree, ino uint64) (uint64, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := tr.nodes[ino]
	if n == nil {
		return 0, false
	}
	return n.lookups, true
}

func TestTreeCreate(t *testing.T) {
	tests := []struct {
		name  string
		errno syscall.Errno
	}{
		{"jobs", 0},
		{"with space", 0},
		{".hidden", 0},
		{strings.Repeat("x", 255), 0},
		{"ctl", syscall.EEXIST}, // reserved for the root's control file
		{"", syscall.EINVAL},
		{".", syscall.EINVAL},
		{"..", syscall.EINVAL},
		{strings.Repeat("x", 256), syscall.ENAMETOOLONG},
		{"dup", syscall.EEXIST}, // created below before the table runs
	}
	tr := newTestTree(t, "dup")
	for _, tc := range tests {
		n, errno := tr.create(tc.name, pipe.DefaultSettings())
		if errno != tc.errno {
			t.Errorf("create(%.20q) = %v; want %v", tc.name, errno, tc.errno)
			continue
		}
		if errno != 0 {
			continue
		}
		if n.kind != kindPipeDir || n.pn == nil || n.pn.name != tc.name || n.pn.p.Name() != tc.name {
			t.Errorf("create(%.20q) made %+v; want a pipe directory of that name", tc.name, n)
		}
		// mkdir's reply is a kernel reference.
		if got, _ := lookupsOf(tr, n.ino); got != 1 {
			t.Errorf("create(%.20q): lookups = %d; want 1", tc.name, got)
		}
	}
}

func TestTreeCreateInvalidSettings(t *testing.T) {
	tr := newTree()
	if _, errno := tr.create("p", pipe.Settings{}); errno != syscall.EINVAL {
		t.Fatalf("create with zero settings = %v; want EINVAL", errno)
	}
	if tr.count() != 0 {
		t.Fatalf("count after refused create = %d; want 0", tr.count())
	}
}

func TestTreeLookup(t *testing.T) {
	tr := newTestTree(t, "a", "b")
	a, _ := tr.lookupNoRef(rootIno, "a")
	out, _ := tr.lookupNoRef(a.ino, nameOut)

	tests := []struct {
		desc   string
		parent uint64
		name   string
		ino    uint64
		kind   nodeKind
		errno  syscall.Errno
	}{
		{"root ctl", rootIno, "ctl", rootCtlIno, kindRootCtl, 0},
		{"pipe a", rootIno, "a", a.pn.dirIno, kindPipeDir, 0},
		{"missing pipe", rootIno, "c", 0, 0, syscall.ENOENT},
		{"pipe file out", a.ino, "out", a.pn.fileIno(kindOut), kindOut, 0},
		{"pipe file pending", a.ino, "pending", a.pn.fileIno(kindPending), kindPending, 0},
		{"pipe file ctl", a.ino, "ctl", a.pn.fileIno(kindCtl), kindCtl, 0},
		{"no such pipe file", a.ino, "err", 0, 0, syscall.ENOENT},
		{"pipe name inside a pipe", a.ino, "b", 0, 0, syscall.ENOENT},
		{"below a file", out.ino, "x", 0, 0, syscall.ENOTDIR},
		{"below the root ctl", rootCtlIno, "x", 0, 0, syscall.ENOTDIR},
		{"unknown parent", 12345, "a", 0, 0, syscall.ENOENT},
	}
	for _, tc := range tests {
		n, errno := tr.lookup(tc.parent, tc.name)
		if errno != tc.errno {
			t.Errorf("%s: lookup(%d, %q) = %v; want %v", tc.desc, tc.parent, tc.name, errno, tc.errno)
			continue
		}
		if errno == 0 && (n.ino != tc.ino || n.kind != tc.kind) {
			t.Errorf("%s: lookup(%d, %q) = ino %d kind %d; want ino %d kind %d", tc.desc, tc.parent, tc.name, n.ino, n.kind, tc.ino, tc.kind)
		}
	}
	// Every lookup of in is an inode of its own, of the right pipe, and
	// goes when the kernel forgets it.
	in1, _ := tr.lookup(a.ino, nameIn)
	in2, _ := tr.lookup(a.ino, nameIn)
	b, _ := tr.lookupNoRef(rootIno, "b")
	bIn, _ := tr.lookup(b.ino, nameIn)
	if in1.ino == in2.ino || in1.ino == bIn.ino || in1.kind != kindIn || in1.pn != a.pn || bIn.pn != b.pn {
		t.Errorf("in lookups = ino %d, %d (pipe a), %d (pipe b); want three distinct inodes of kind in, of their pipes", in1.ino, in2.ino, bIn.ino)
	}
	tr.forget(in1.ino, 1)
	if tr.node(in1.ino) != nil || tr.node(in2.ino) == nil {
		t.Errorf("after forgetting the first in: node present = %v, second present = %v; want gone, present", tr.node(in1.ino) != nil, tr.node(in2.ino) != nil)
	}
}

func TestTreeLookupCounts(t *testing.T) {
	tr := newTestTree(t, "p")
	dir, _ := tr.lookupNoRef(rootIno, "p")
	steps := []struct {
		desc string
		do   func()
		ino  uint64
		want uint64
	}{
		{"after mkdir", func() {}, dir.ino, 1},
		{"lookup dir", func() { tr.lookup(rootIno, "p") }, dir.ino, 2},
		{"lookup dir again", func() { tr.lookup(rootIno, "p") }, dir.ino, 3},
		{"forget 2", func() { tr.forget(dir.ino, 2) }, dir.ino, 1},
		{"lookupNoRef leaves it", func() { tr.lookupNoRef(rootIno, "p") }, dir.ino, 1},
		{"lookup out", func() { tr.lookup(dir.ino, nameOut) }, dir.pn.fileIno(kindOut), 1},
		{"forget more than held", func() { tr.forget(dir.pn.fileIno(kindOut), 10) }, dir.pn.fileIno(kindOut), 0},
		{"forget an unknown inode", func() { tr.forget(999999, 1) }, dir.ino, 1},
	}
	for _, st := range steps {
		st.do()
		got, ok := lookupsOf(tr, st.ino)
		if !ok || got != st.want {
			t.Fatalf("%s: lookups of %d = %d (exists %v); want %d", st.desc, st.ino, got, ok, st.want)
		}
	}
	// A live pipe's node stays even with no kernel reference.
	if tr.node(dir.pn.fileIno(kindOut)) == nil {
		t.Fatalf("node of a live pipe's out was dropped at zero lookups")
	}
}

func TestTreeRemoveKeepsReferencedNodes(t *testing.T) {
	tr := newTestTree(t, "p", "other")
	dir, _ := tr.lookupNoRef(rootIno, "p")
	pn := dir.pn
	out, _ := tr.lookup(dir.ino, nameOut)              // held by the kernel
	pending, _ := tr.lookupNoRef(dir.ino, namePending) // known, not held

	got, errno := tr.remove("p")
	if errno != 0 || got != pn {
		t.Fatalf("remove(p) = %p, %v; want %p, 0", got, errno, pn)
	}
	if !pn.removed {
		t.Fatalf("removed pipe not marked removed")
	}
	if tr.node(pending.ino) != nil {
		t.Errorf("unreferenced node %d of a removed pipe kept", pending.ino)
	}
	if tr.node(out.ino) == nil || tr.node(dir.ino) == nil {
		t.Fatalf("referenced nodes of a removed pipe dropped before FORGET")
	}
	if _, errno := tr.lookup(rootIno, "p"); errno != syscall.ENOENT {
		t.Errorf("lookup of a removed pipe = %v; want ENOENT", errno)
	}
	if _, errno := tr.lookup(dir.ino, nameIn); errno != syscall.ENOENT {
		t.Errorf("lookup in a removed pipe's directory = %v; want ENOENT", errno)
	}
	if names := tr.list(); !slices.Equal(names, []string{"other"}) {
		t.Errorf("list after remove = %q; want [other]", names)
	}

	tr.forget(out.ino, 1)
	if tr.node(out.ino) != nil {
		t.Errorf("node %d of a removed pipe kept after its last FORGET", out.ino)
	}
	tr.forget(dir.ino, 1)
	if tr.node(dir.ino) != nil {
		t.Errorf("directory node of a removed pipe kept after its last FORGET")
	}

	// A new pipe of the same name gets new inode numbers.
	n, errno := tr.create("p", pipe.DefaultSettings())
	if errno != 0 {
		t.Fatalf("create(p) after remove = %v", errno)
	}
	if n.ino == dir.ino || n.pn == pn {
		t.Errorf("recreated pipe reuses inode %d or pipe %p", n.ino, pn)
	}
}

func TestTreeRemoveErrors(t *testing.T) {
	tr := newTestTree(t, "p")
	tests := []struct {
		name  string
		errno syscall.Errno
	}{
		{"missing", syscall.ENOENT},
		{"ctl", syscall.ENOTDIR},
		{"p", 0},
		{"p", syscall.ENOENT}, // twice
	}
	for _, tc := range tests {
		if _, errno := tr.remove(tc.name); errno != tc.errno {
			t.Errorf("remove(%q) = %v; want %v", tc.name, errno, tc.errno)
		}
	}
}

func TestTreeRename(t *testing.T) {
	tests := []struct {
		desc     string
		old, new string
		errno    syscall.Errno
		want     []string // names after
	}{
		{"plain", "a", "z", 0, []string{"b", "z"}},
		{"same name", "a", "a", 0, []string{"a", "b"}},
		{"onto a pipe", "a", "b", syscall.ENOTEMPTY, []string{"a", "b"}},
		{"missing", "c", "d", syscall.ENOENT, []string{"a", "b"}},
		{"onto ctl", "a", "ctl", syscall.EEXIST, []string{"a", "b"}},
		{"to an invalid name", "a", "..", syscall.EINVAL, []string{"a", "b"}},
	}
	for _, tc := range tests {
		tr := newTestTree(t, "a", "b")
		before, _ := tr.lookupNoRef(rootIno, tc.old)
		if errno := tr.rename(tc.old, tc.new); errno != tc.errno {
			t.Errorf("%s: rename(%q, %q) = %v; want %v", tc.desc, tc.old, tc.new, errno, tc.errno)
			continue
		}
		if got := tr.list(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: list after rename = %q; want %q", tc.desc, got, tc.want)
		}
		if tc.errno != 0 {
			continue
		}
		after, errno := tr.lookupNoRef(rootIno, tc.new)
		if errno != 0 || after.ino != before.ino {
			t.Errorf("%s: %q after rename = %v, %v; want the inode %d of %q", tc.desc, tc.new, after, errno, before.ino, tc.old)
			continue
		}
		if after.pn.name != tc.new || after.pn.p.Name() != tc.new {
			t.Errorf("%s: renamed pipe is called %q (engine %q); want %q", tc.desc, after.pn.name, after.pn.p.Name(), tc.new)
		}
	}
}

func TestTreeListCountAll(t *testing.T) {
	tr := newTestTree(t, "c", "a", "b")
	if got := tr.list(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("list = %q; want [a b c]", got)
	}
	if got := tr.count(); got != 3 {
		t.Errorf("count = %d; want 3", got)
	}
	var names []string
	for _, pn := range tr.all() {
		names = append(names, pn.name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("all = %q; want a, b, c", names)
	}
	if got := newTree().list(); len(got) != 0 {
		t.Errorf("list of an empty tree = %q; want none", got)
	}
}

func TestTreeFileInodes(t *testing.T) {
	tr := newTestTree(t, "p", "q")
	p, _ := tr.lookupNoRef(rootIno, "p")
	q, _ := tr.lookupNoRef(rootIno, "q")
	seen := map[uint64]string{rootIno: "root", rootCtlIno: "root ctl"}
	for _, pn := range []*pipeNode{p.pn, q.pn} {
		inos := []uint64{pn.dirIno}
		for _, f := range pipeFiles {
			inos = append(inos, pn.fileIno(f.kind))
		}
		for _, ino := range inos {
			if prev, dup := seen[ino]; dup {
				t.Errorf("inode %d of pipe %s already belongs to %s", ino, pn.name, prev)
			}
			seen[ino] = pn.name
			if ino >= pn.dirIno+inodeStride {
				t.Errorf("inode %d of pipe %s lies outside its stride from %d", ino, pn.name, pn.dirIno)
			}
		}
	}
}
