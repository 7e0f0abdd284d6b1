package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// spec is the command line and inherited descriptors of one client.
type spec struct {
	args  []string
	files []*os.File
}

func (s *spec) flag(name string, v any) *spec {
	s.args = append(s.args, "--"+name+"="+fmt.Sprint(v))
	return s
}

// file passes f to the client and names its descriptor number in flag.
func (s *spec) file(name string, f *os.File) *spec {
	// exec.Cmd.ExtraFiles start at descriptor 3.
	s.files = append(s.files, f)
	return s.flag(name, 2+len(s.files))
}

// A group is the clients of one measurement. If one fails the others are
// killed, so that a writer never waits forever for a reader that died.
type group struct {
	e      *env
	ctx    context.Context
	cancel context.CancelFunc
	procs  []*proc
}

// proc is one running client.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *bufio.Reader
	stderr lockedBuffer
	result []byte
}

// newGroup bounds the group's clients with a generous timeout: a
// measurement that hangs fails instead of hanging the run.
func (e *env) newGroup(timeout time.Duration) *group {
	ctx, cancel := context.WithTimeout(e.ctx, timeout+time.Minute)
	return &group{e: e, ctx: ctx, cancel: cancel}
}

// start starts client role with the arguments of s.
func (g *group) start(name, role string, s *spec) (*proc, error) {
	args := append(append(append([]string{}, g.e.opts.ClientArgs...), role), s.args...)
	cmd := exec.CommandContext(g.ctx, g.e.opts.Exe, args...)
	cmd.ExtraFiles = s.files
	cmd.WaitDelay = 5 * time.Second
	p := &proc{name: name, cmd: cmd}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	g.procs = append(g.procs, p)
	return p, nil
}

// ready waits for the client's "ready" line.
func (p *proc) ready() error {
	line, err := p.out.ReadString('\n')
	if err == nil && line == "ready\n" {
		return nil
	}
	werr := p.cmd.Wait()
	return fmt.Errorf("%s did not get ready (%q, %v): %s", p.name, line, errors.Join(err, werr), p.stderr.trimmed())
}

// finish waits for the client to exit and keeps its result line.
func (p *proc) finish() error {
	rest, rerr := io.ReadAll(p.out)
	err := p.cmd.Wait()
	if err != nil || rerr != nil {
		return fmt.Errorf("%s: %v: %s", p.name, errors.Join(err, rerr), p.stderr.trimmed())
	}
	lines := strings.Split(strings.TrimSpace(string(rest)), "\n")
	p.result = []byte(lines[len(lines)-1])
	return nil
}

func (p *proc) decode(v any) error {
	if err := json.Unmarshal(p.result, v); err != nil {
		return fmt.Errorf("%s: result %q: %w", p.name, p.result, err)
	}
	return nil
}

// wait waits for every client of the group. The first failure kills the
// others and is the error returned: the rest only died of it.
func (g *group) wait() error {
	defer g.cancel()
	var (
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for _, p := range g.procs {
		wg.Go(func() {
			if err := p.finish(); err != nil {
				once.Do(func() { first = err; g.cancel() })
			}
		})
	}
	wg.Wait()
	if first == nil && g.e.ctx.Err() != nil {
		first = g.e.ctx.Err()
	}
	return first
}

// abort kills the group's clients, for a measurement that failed to
// start.
func (g *group) abort() {
	g.cancel()
	for _, p := range g.procs {
		_ = p.finish()
	}
}

// run starts one client and waits for its result.
func (e *env) run(name, role string, s *spec, v any) error {
	g := e.newGroup(e.opts.Duration)
	p, err := g.start(name, role, s)
	if err != nil {
		g.abort()
		return err
	}
	if err := g.wait(); err != nil {
		return err
	}
	return p.decode(v)
}

// lockedBuffer keeps the last few KiB of a client's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

const stderrKeep = 8 << 10

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if l.b.Len() > 2*stderrKeep {
		keep := append([]byte(nil), l.b.Bytes()[l.b.Len()-stderrKeep:]...)
		l.b.Reset()
		l.b.Write(keep)
	}
	return len(p), nil
}

func (l *lockedBuffer) trimmed() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.TrimSpace(l.b.String())
	if s == "" {
		return "(no output)"
	}
	return s
}
