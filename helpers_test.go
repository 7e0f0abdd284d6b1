package pipefs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The end-to-end tests build cmd/pipefs once (TestMain), mount it on
// temporary directories, and use each mount from other processes: shell
// tools, python3, and this test binary started again as a client (see
// runClient). Nothing sleeps to let something happen: a test that needs a
// process to be blocked in the mount waits for the pipe's ctl to count it.

const (
	// failAfter bounds every wait. Reaching it means something hung, and
	// the failure names the wait.
	failAfter = 15 * time.Second
	// clientEnv makes the test binary run as a client (runClient).
	clientEnv = "PIPEFS_TEST_CLIENT"
	// requireEnv set to 1 turns "FUSE is unavailable" into a failure.
	requireEnv = "PIPEFS_REQUIRE_FUSE"
	// maxPacket is the default max message size (pipe.MaxPacket).
	maxPacket = 1<<20 - 4<<10
)

// pipefsBin is the binary built by TestMain, in binDir.
var pipefsBin, binDir string

func TestMain(m *testing.M) {
	if name := os.Getenv(clientEnv); name != "" {
		os.Exit(runClient(name, os.Args[1:]))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pipefs-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// TestUnprivilegedMount runs the binary as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	pipefsBin = filepath.Join(dir, "pipefs")
	if err := buildPipefs(pipefsBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func buildPipefs(out string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), "./cmd/pipefs")
	if b, err := exec.Command(goTool(), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// raceBin builds, once, a daemon with the race detector.
var raceBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "pipefs-race")
	return bin, buildPipefs(bin, "-race")
})

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// fuseUnavailable ends a test that cannot run without FUSE: it skips, or
// fails when PIPEFS_REQUIRE_FUSE=1 says that this machine must have FUSE.
func fuseUnavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s (%s=1 requires FUSE)", msg, requireEnv)
	}
	t.Skipf("FUSE unavailable: %s (set %s=1 to make this a failure)", msg, requireEnv)
}

func requireFUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		fuseUnavailable(t, "cannot open /dev/fuse: %v", err)
	}
	f.Close()
}

// mount is a running pipefs daemon and its mount point.
type mount struct {
	dir    string
	cred   *syscall.Credential // whom the daemon and clients run as; nil: the test's user
	daemon *proc
	killed bool // the test killed the daemon: no clean exit expected
}

type mountOptions struct {
	dir   string // mount point; the daemon creates it
	cred  *syscall.Credential
	flags []string
	bin   string // the pipefs binary; pipefsBin if empty
}

// mountPipefs starts `pipefs mount` on a new temporary directory, waits
// until the mount is ready, and unmounts it at the end of the test,
// checking that the daemon exits 0 and leaves no mount behind.
func mountPipefs(t *testing.T, flags ...string) *mount {
	t.Helper()
	return mountWith(t, mountOptions{dir: filepath.Join(t.TempDir(), "mnt"), flags: flags})
}

func mountWith(t *testing.T, o mountOptions) *mount {
	t.Helper()
	requireFUSE(t)
	m := &mount{dir: o.dir, cred: o.cred}
	if o.bin == "" {
		o.bin = pipefsBin
	}
	// The suite's transport first: a test's own flags come later and win.
	args := append(append(append([]string{"mount"}, transportFlags()...), o.flags...), o.dir)
	m.daemon = m.start(t, o.bin, args...)
	deadline := time.Now().Add(failAfter)
	for !m.ready(t) {
		if m.daemon.exited() {
			fuseUnavailable(t, "pipefs mount %s: %v: %s", o.dir, m.daemon.err, m.daemon.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipefs mount %s: %s/ctl did not appear within %v; daemon log:\n%s", o.dir, o.dir, failAfter, m.daemon.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { m.stop(t) })
	return m
}

// ready reports whether MOUNTPOINT/ctl exists, the documented sign.
func (m *mount) ready(t *testing.T) bool {
	if m.cred != nil {
		// Only the mounting user may look into the mount.
		_, _, err := m.exec(t, "test", "-e", m.path("ctl"))
		return err == nil
	}
	_, err := within(t, "stat ctl", func() (os.FileInfo, error) { return os.Stat(m.path("ctl")) })
	return err == nil
}

// stop unmounts as a user would, with SIGTERM, unless the test ended the
// daemon itself, and checks that the daemon exited 0 and no mount is left.
func (m *mount) stop(t *testing.T) {
	t.Helper()
	if !m.daemon.exited() {
		m.daemon.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-m.daemon.done:
	case <-time.After(failAfter):
		t.Errorf("pipefs daemon still running %v after SIGTERM; log:\n%s", failAfter, m.daemon.stderr.String())
		return
	}
	if code := m.daemon.cmd.ProcessState.ExitCode(); code != 0 && !m.killed {
		why := ""
		if strings.Contains(m.daemon.stderr.String(), "WARNING: DATA RACE") {
			why = " (the race detector found a data race in the daemon)"
		}
		t.Errorf("pipefs daemon exited with %v%s, want exit status 0 (its log follows)", m.daemon.cmd.ProcessState, why)
	}
	if isMounted(m.dir) && !m.killed {
		t.Errorf("%s is still mounted after the daemon exited", m.dir)
		detach(m.dir)
	}
	if t.Failed() {
		t.Logf("daemon log of %s:\n%s", m.dir, m.daemon.stderr.String())
	}
}

// path is a path in the mount; path("jobs/in") is MOUNTPOINT/jobs/in.
func (m *mount) path(rel string) string { return filepath.Join(m.dir, rel) }

// mkdir makes a pipe with the shell, as users do.
func (m *mount) mkdir(t *testing.T, name string) {
	t.Helper()
	m.sh(t, `mkdir "$M/`+name+`"`)
}

// isMounted reports whether a pipefs mount sits at dir.
func isMounted(dir string) bool {
	_, ok := superOptions(dir)
	return ok
}

// superOptions returns the options of the pipefs mount at dir, per
// /proc/self/mountinfo.
func superOptions(dir string) (string, bool) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mountpoint options... - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) >= 5 && len(g) >= 3 && strings.ReplaceAll(f[4], `\040`, " ") == dir && g[0] == "fuse.pipefs" {
			return g[2], true
		}
	}
	return "", false
}

// detach removes a mount that a failed test left behind.
func detach(dir string) {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	}
}

// within runs fn, an operation of the test process itself on the mount,
// and fails the test if it has not returned after failAfter (the daemon
// hung) instead of letting the test hang.
func within[T any](t testing.TB, what string, fn func() (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(failAfter):
		t.Fatalf("%s did not return within %v", what, failAfter)
		panic("unreachable")
	}
}

// readFile reads a file of the mount (a status file: it never blocks).
func (m *mount) readFile(t *testing.T, rel string) string {
	t.Helper()
	if m.cred != nil {
		return m.run(t, "cat", m.path(rel))
	}
	b, err := within(t, "read "+rel, func() ([]byte, error) { return os.ReadFile(m.path(rel)) })
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(b)
}

// status reads the ctl file of a pipe ("" for the root's) as key-value
// pairs, one per line.
func (m *mount) status(t *testing.T, pipe string) map[string]string {
	t.Helper()
	return parseStatus(m.readFile(t, filepath.Join(pipe, "ctl")))
}

func parseStatus(text string) map[string]string {
	st := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		k, v, _ := strings.Cut(line, " ")
		st[k] = v
	}
	return st
}

// pending returns the content of a pipe's pending file.
func (m *mount) pending(t *testing.T, pipe string) string {
	t.Helper()
	return m.readFile(t, filepath.Join(pipe, "pending"))
}

func (m *mount) wantPending(t *testing.T, pipe string, want int) {
	t.Helper()
	if got := m.pending(t, pipe); got != fmt.Sprintf("%d\n", want) {
		t.Fatalf("%s/pending = %q, want %q", pipe, got, fmt.Sprintf("%d\n", want))
	}
}

// waitStatus waits until the status line key of pipe's ctl reads want:
// how a test knows that a reader or writer is blocked in the daemon.
func (m *mount) waitStatus(t *testing.T, pipe, key, want string) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		st := m.status(t, pipe)
		if st[key] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/ctl: %s stayed %q, want %q, for %v; status: %v", pipe, key, st[key], want, failAfter, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ctlLine returns the line of a ctl status that starts with key, or "".
func ctlLine(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		if k, _, _ := strings.Cut(line, " "); k == key {
			return line
		}
	}
	return ""
}

// command prepares a process that uses the mount: it runs as the mount's
// user, with $M set to the mount point.
func (m *mount) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "M="+m.dir)
	if m.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: m.cred}
	}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// exec runs a command to completion, within failAfter.
func (m *mount) exec(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	cmd := m.command(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %v (stdout %q, stderr %q)", describe(cmd.Args), failAfter, o.String(), e.String())
	}
	return o.String(), e.String(), err
}

// run runs a command that must succeed and returns its output.
func (m *mount) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, stderr, err := m.exec(t, name, args...)
	if err != nil {
		t.Fatalf("%s: %v (stdout %q, stderr %q)", describe(append([]string{name}, args...)), err, out, stderr)
	}
	return out
}

// sh runs a shell script that must succeed and returns its output.
func (m *mount) sh(t *testing.T, script string) string {
	t.Helper()
	return m.run(t, "sh", "-c", script)
}

// shFails runs a shell script that must fail and returns its stderr.
func (m *mount) shFails(t *testing.T, script string) string {
	t.Helper()
	out, stderr, err := m.exec(t, "sh", "-c", script)
	if err == nil {
		t.Fatalf("sh -c %q succeeded (stdout %q), want a failure", script, out)
	}
	return stderr
}

func describe(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// proc is a process started in the background.
type proc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout outBuffer
	stderr outBuffer
	done   chan struct{} // closed when it has exited
	err    error         // cmd.Wait's result, once done
	taken  int           // bytes of stdout returned by nextLine
}

// start starts a process on the mount; the end of the test kills it if
// it still runs.
func (m *mount) start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProc(t, m.command(context.Background(), name, args...))
}

// startShell starts a shell script in the background.
func (m *mount) startShell(t *testing.T, script string) *proc {
	t.Helper()
	return m.start(t, "sh", "-c", script)
}

// startClient starts this test binary as client name (see runClient).
func (m *mount) startClient(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := m.command(context.Background(), exe, args...)
	cmd.Env = append(cmd.Env, clientEnv+"="+name)
	return startProc(t, cmd)
}

func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", describe(cmd.Args), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		if !p.exited() {
			cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(failAfter):
			t.Errorf("%s still running %v after SIGKILL", describe(cmd.Args), failAfter)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) String() string {
	return fmt.Sprintf("%s (pid %d)", describe(p.cmd.Args), p.cmd.Process.Pid)
}

// wait waits for the process to exit within d and returns how it ended.
func (p *proc) wait(t *testing.T, d time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(d):
		t.Fatalf("%s still running after %v; stdout %q, stderr %q", p, d, p.stdout.String(), p.stderr.String())
		return nil
	}
}

// waitOK waits for the process to exit 0 and returns its stdout.
func (p *proc) waitOK(t *testing.T) string {
	t.Helper()
	if st := p.wait(t, failAfter); !st.Success() {
		t.Fatalf("%s: %v, want exit status 0; stdout %q, stderr %q", p, st, p.stdout.String(), p.stderr.String())
	}
	return p.stdout.String()
}

// send writes a line to the process's standard input.
func (p *proc) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: send %q: %v; stderr %q", p, describe([]string{line}), err, p.stderr.String())
	}
}

// nextLine returns the next line of the process's standard output,
// without its newline, waiting up to failAfter for it.
func (p *proc) nextLine(t *testing.T) string {
	t.Helper()
	timeout := time.After(failAfter)
	for {
		b, changed := p.stdout.snapshot()
		if i := bytes.IndexByte(b[p.taken:], '\n'); i >= 0 {
			line := string(b[p.taken : p.taken+i])
			p.taken += i + 1
			return line
		}
		select {
		case <-changed:
		case <-p.done:
			if b, _ := p.stdout.snapshot(); bytes.IndexByte(b[p.taken:], '\n') < 0 {
				t.Fatalf("%s exited (%v) before printing a line; stdout left %q, stderr %q", p, p.err, b[p.taken:], p.stderr.String())
			}
		case <-timeout:
			t.Fatalf("%s printed no line within %v; stdout left %q, stderr %q", p, failAfter, b[p.taken:], p.stderr.String())
		}
	}
}

// ask sends a line and returns the reply line.
func (p *proc) ask(t *testing.T, line string) string {
	t.Helper()
	p.send(t, line)
	return p.nextLine(t)
}

// noLineYet checks that the process has not printed another line.
func (p *proc) noLineYet(t *testing.T, what string) {
	t.Helper()
	if b, _ := p.stdout.snapshot(); bytes.IndexByte(b[p.taken:], '\n') >= 0 {
		t.Fatalf("%s: %s, but it already answered %q", p, what, b[p.taken:])
	}
}

// waitOutput waits until the process's standard output is exactly want.
func (p *proc) waitOutput(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(failAfter)
	for {
		b, changed := p.stdout.snapshot()
		if string(b) == want {
			return
		}
		if len(b) > len(want) || !strings.HasPrefix(want, string(b)) {
			t.Fatalf("%s printed %q, want %q", p, b, want)
		}
		select {
		case <-changed:
		case <-p.done:
			if b, _ := p.stdout.snapshot(); string(b) != want {
				t.Fatalf("%s exited (%v) having printed %q, want %q; stderr %q", p, p.err, b, want, p.stderr.String())
			}
		case <-timeout:
			t.Fatalf("%s printed %q within %v, want %q", p, b, failAfter, want)
		}
	}
}

// waitPolling waits until a thread of the process sleeps in poll(2) or
// select(2) (its wchan says so), so that what the test does next happens
// while it waits rather than before it started.
func waitPolling(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	var seen []string
	for {
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", p.cmd.Process.Pid))
		seen = seen[:0]
		for _, f := range files {
			b, _ := os.ReadFile(f)
			w := string(b)
			seen = append(seen, w)
			for _, fn := range []string{"poll_schedule_timeout", "do_sys_poll", "do_select", "core_sys_select"} {
				if strings.HasPrefix(w, fn) {
					return
				}
			}
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) instead of polling; stdout %q, stderr %q", p, p.err, p.stdout.String(), p.stderr.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not sleep in poll or select within %v (thread wait channels %q)", p, failAfter, seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// outBuffer collects a process's output and tells when it grows.
type outBuffer struct {
	mu      sync.Mutex
	b       []byte
	changed chan struct{}
}

func (b *outBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return len(p), nil
}

// snapshot returns the output so far and a channel closed when it grows.
func (b *outBuffer) snapshot() ([]byte, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return bytes.Clone(b.b), b.changed
}

func (b *outBuffer) String() string {
	s, _ := b.snapshot()
	return string(s)
}

// fdClient is a client process holding one descriptor of a file of the
// mount, on which it makes the system calls the test asks for (serveFD).
type fdClient struct{ *proc }

// openFD starts a client that opens rel with flags: a comma-separated list
// of r, w or rw and optionally nonblock.
func (m *mount) openFD(t *testing.T, rel, flags string) *fdClient {
	t.Helper()
	c := &fdClient{m.startClient(t, "fd")}
	if r := c.ask(t, "open "+flags+" "+m.path(rel)); r != "ok" {
		t.Fatalf("open %s (%s): %s", rel, flags, r)
	}
	return c
}

// write makes one write(2) and returns the count or the errno's name.
func (c *fdClient) write(t *testing.T, data string) (int, string) {
	t.Helper()
	return parseWrite(t, c.ask(t, "write "+hex.EncodeToString([]byte(data))))
}

func parseWrite(t *testing.T, reply string) (int, string) {
	t.Helper()
	if e, ok := strings.CutPrefix(reply, "err "); ok {
		return 0, e
	}
	n, err := strconv.Atoi(strings.TrimPrefix(reply, "ok "))
	if err != nil {
		t.Fatalf("bad reply to write: %q", reply)
	}
	return n, ""
}

func (c *fdClient) mustWrite(t *testing.T, data string) {
	t.Helper()
	if n, errno := c.write(t, data); n != len(data) || errno != "" {
		t.Fatalf("write(%q) = %d, %q; want %d bytes written", describe([]string{data}), n, errno, len(data))
	}
}

// read makes one read(2) of up to size bytes and returns the bytes or the
// errno's name.
func (c *fdClient) read(t *testing.T, size int) (string, string) {
	t.Helper()
	return parseRead(t, c.ask(t, "read "+strconv.Itoa(size)))
}

func parseRead(t *testing.T, reply string) (string, string) {
	t.Helper()
	if e, ok := strings.CutPrefix(reply, "err "); ok {
		return "", e
	}
	h, ok := strings.CutPrefix(reply, "data ")
	b, err := hex.DecodeString(h)
	if !ok || err != nil {
		t.Fatalf("bad reply to read: %q", reply)
	}
	return string(b), ""
}

func (c *fdClient) mustRead(t *testing.T, size int, want string) {
	t.Helper()
	if got, errno := c.read(t, size); got != want || errno != "" {
		t.Fatalf("read(%d) = %q, %q; want %q", size, describe([]string{got}), errno, describe([]string{want}))
	}
}

// poll calls poll(2) for events "in" or "out" with a timeout in
// milliseconds and returns the revents and how long it took.
func (c *fdClient) poll(t *testing.T, events string, ms int) (int16, time.Duration) {
	t.Helper()
	return parsePoll(t, c.ask(t, fmt.Sprintf("poll %s %d", events, ms)))
}

func parsePoll(t *testing.T, reply string) (int16, time.Duration) {
	t.Helper()
	var rev int16
	var us int64
	if _, err := fmt.Sscanf(reply, "poll %d %d", &rev, &us); err != nil {
		t.Fatalf("bad reply to poll: %q", reply)
	}
	return rev, time.Duration(us) * time.Microsecond
}

// runClient is main for the test binary started as a client.
func runClient(name string, args []string) int {
	switch name {
	case "fd":
		return serveFD()
	case "goreaders":
		return goReaders(args)
	}
	fmt.Fprintf(os.Stderr, "unknown client %q\n", name)
	return 2
}

// serveFD holds one descriptor and runs one command per line of standard
// input on it, answering each with one line:
//
//	open FLAGS PATH   ok | err ENAME
//	nonblock          ok | err ENAME      (fcntl F_SETFL O_NONBLOCK)
//	write HEX         ok N | err ENAME    (one write(2))
//	read N            data HEX | err ENAME (one read(2); empty is end of file)
//	poll in|out MS    poll REVENTS MICROSECONDS
//	close             ok | err ENAME
//
// It uses raw system calls, not os.File, so that nothing but the command
// touches the descriptor.
func serveFD() int {
	in := bufio.NewReader(os.Stdin)
	fd := -1
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0
		}
		fmt.Println(fdCommand(&fd, strings.TrimSuffix(line, "\n")))
	}
}

func fdCommand(fd *int, line string) string {
	verb, arg, _ := strings.Cut(line, " ")
	switch verb {
	case "open":
		flags, path, _ := strings.Cut(arg, " ")
		mode := 0
		for _, f := range strings.Split(flags, ",") {
			switch f {
			case "r":
				mode |= unix.O_RDONLY
			case "w":
				mode |= unix.O_WRONLY
			case "rw":
				mode |= unix.O_RDWR
			case "nonblock":
				mode |= unix.O_NONBLOCK
			default:
				return "err bad flag " + f
			}
		}
		n, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			return errReply(err)
		}
		*fd = n
		return "ok"
	case "nonblock":
		fl, err := unix.FcntlInt(uintptr(*fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(*fd), unix.F_SETFL, fl|unix.O_NONBLOCK)
		}
		if err != nil {
			return errReply(err)
		}
		return "ok"
	case "write":
		b, err := hex.DecodeString(arg)
		if err != nil {
			return "err bad hex"
		}
		n, err := ignoringEINTR(func() (int, error) { return unix.Write(*fd, b) })
		if err != nil {
			return errReply(err)
		}
		return "ok " + strconv.Itoa(n)
	case "read":
		size, err := strconv.Atoi(arg)
		if err != nil {
			return "err bad size"
		}
		buf := make([]byte, size)
		n, err := ignoringEINTR(func() (int, error) { return unix.Read(*fd, buf) })
		if err != nil {
			return errReply(err)
		}
		return "data " + hex.EncodeToString(buf[:n])
	case "poll":
		evs, msArg, _ := strings.Cut(arg, " ")
		ms, _ := strconv.Atoi(msArg)
		ev := int16(unix.POLLIN)
		if evs == "out" {
			ev = unix.POLLOUT
		}
		fds := []unix.PollFd{{Fd: int32(*fd), Events: ev}}
		start := time.Now()
		for {
			left := ms - int(time.Since(start).Milliseconds())
			_, err := unix.Poll(fds, max(left, 0))
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		return fmt.Sprintf("poll %d %d", fds[0].Revents, time.Since(start).Microseconds())
	case "close":
		if err := unix.Close(*fd); err != nil {
			return errReply(err)
		}
		return "ok"
	}
	return "err unknown command " + verb
}

// ignoringEINTR retries a call interrupted by one of the Go runtime's own
// signals, as package os does.
func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

func errReply(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return "err " + unix.ErrnoName(errno)
	}
	return "err " + err.Error()
}

// goReaders reads lines from files NAME=PATH with os.File, one goroutine
// each, as Go programs do: os.File puts a pollable file in non-blocking
// mode and waits for it in the netpoller (edge-triggered epoll). It prints
// "file NAME nonblock BOOL" per file, then "ready", then "msg NAME LINE"
// per line read, and exits when its standard input closes.
func goReaders(args []string) int {
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", a...)
	}
	for _, arg := range args {
		name, path, _ := strings.Cut(arg, "=")
		f, err := os.Open(path)
		if err != nil {
			say("error %v", err)
			return 1
		}
		nonblock := false
		if rc, err := f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
				nonblock = err == nil && fl&unix.O_NONBLOCK != 0
			})
		}
		say("file %s nonblock %v", name, nonblock)
		go func() {
			r := bufio.NewReader(f)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					say("error %s %v", name, err)
					return
				}
				say("msg %s %s", name, strings.TrimSuffix(line, "\n"))
			}
		}()
	}
	say("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

var python = sync.OnceValue(func() string {
	// The real interpreter rather than a wrapper (pyenv's shims are
	// shell scripts), so that the process the test watches is python.
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
})

func requirePython(t *testing.T) string {
	t.Helper()
	p := python()
	if p == "" {
		t.Skip("python3 is not installed")
	}
	return p
}
