package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"pipefs/pipe"
)

// Server is a pipefs mount: New, Mount, then Wait for the kernel to end
// the connection, or Close to unmount.
type Server struct {
	opts       Options
	log        *slog.Logger
	mountpoint string
	uid, gid   uint32

	tree    *tree
	handles table[handle]
	dirs    table[dirHandle]
	parks   *parkTable
	proto   *fuse.ProtocolServer

	// fdMu keeps the device descriptor open while replies are written:
	// completions may still be delivered (by Close destroying the
	// pipes) after the loops have ended, and a closed number could be
	// reused by another file.
	fdMu      sync.RWMutex
	fd        int
	viaHelper bool
	conn      uint32 // fusectl connection number, 0 if unknown

	linkMu sync.Mutex // guards every pipeNode.link

	ring     atomic.Pointer[ringSet] // FUSE over io_uring, when in use
	ringPrep *ringSet                // prepared before INIT (see prepareRing)

	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}
	loops     sync.WaitGroup
	closeOnce sync.Once
}

// New checks the options and prepares a server; nothing is mounted yet.
func New(opts Options) (*Server, error) {
	if opts.Mountpoint == "" {
		return nil, errors.New("no mount point given")
	}
	if opts.Defaults == (pipe.Settings{}) {
		opts.Defaults = pipe.DefaultSettings()
	}
	if err := opts.Defaults.Validate(); err != nil {
		return nil, err
	}
	if opts.Readers <= 0 {
		opts.Readers = 2
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	mp, err := filepath.Abs(opts.Mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount point: %w", err)
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		mountpoint: mp,
		uid:        uint32(os.Getuid()),
		gid:        uint32(os.Getgid()),
		tree:       newTree(),
		parks:      newParkTable(),
		fd:         -1,
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.proto = fuse.NewProtocolServer(&fileSystem{RawFileSystem: fuse.NewDefaultRawFileSystem(), s: s}, &fuse.MountOptions{
		MaxWrite:           maxWrite,
		DisableReadDirPlus: true, // READDIRPLUS would count lookups per entry
		ExtraCapabilities:  ringCapability(opts),
		Logger:             slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		Debug:              false,
	})
	return s, nil
}

func (s *Server) closeDevice() {
	s.fdMu.Lock()
	defer s.fdMu.Unlock()
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// Mountpoint is the absolute path of the mount.
func (s *Server) Mountpoint() string { return s.mountpoint }

// Mount mounts the filesystem and starts serving it. It returns once the
// kernel has the mount; Ready tells when requests are answered.
func (s *Server) Mount() error {
	if err := s.prepareMountpoint(s.mountpoint); err != nil {
		return err
	}
	if !s.opts.NoIOURing && os.Geteuid() == 0 {
		s.enableRingParam()
	}
	fd, viaHelper, err := s.mount(s.mountpoint)
	if err != nil {
		return err
	}
	s.fd, s.viaHelper = fd, viaHelper
	if !s.opts.NoIOURing {
		// Before INIT is read: see prepareRing.
		if err := s.prepareRing(); err != nil {
			s.log.Warn("FUSE over io_uring unavailable; serving through /dev/fuse", "err", err)
		}
	}
	// One goroutine serves INIT; the others start once it is answered
	// (see markReady), because go-fuse's protocol server records the
	// negotiated settings there and reads them for every later request.
	s.loops.Add(1)
	go s.readLoop()
	go func() {
		s.loops.Wait()
		if rs := s.ring.Load(); rs != nil {
			rs.stop()
		}
		s.closeAllPipes()
		s.closeDevice()
		close(s.done)
	}()
	go func() {
		select {
		case <-s.ready:
			if c, err := connectionOf(s.mountpoint); err == nil {
				atomic.StoreUint32(&s.conn, c)
			}
		case <-s.done:
		}
	}()
	s.log.Info("mounted", "mountpoint", s.mountpoint, "helper", viaHelper)
	return nil
}

// markReady runs once INIT has been answered: the mount now serves
// requests, and the rest of the request loops start, with the FUSE ring
// if INIT negotiated it (flags are those of the reply).
func (s *Server) markReady(flags uint64) {
	s.readyOnce.Do(func() {
		if rs := s.ringPrep; rs != nil {
			ok := flags&capOverIOURing != 0
			rs.launch(ok)
			if ok {
				s.log.Info("serving through FUSE over io_uring", "queues", rs.queues)
			}
		}
		for i := 1; i < s.opts.Readers; i++ {
			s.loops.Add(1)
			go s.readLoop()
		}
		close(s.ready)
	})
}

// Ready is closed once the kernel's INIT has been answered: from then on the
// mount serves requests, and MOUNTPOINT/ctl exists.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when the connection has ended and the server stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close shuts the mount down cleanly: it detaches the mount, ends every
// blocked read with end of file and every blocked write with EPIPE, and
// waits until the kernel ends the connection or ctx expires, in which case
// it aborts the connection.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		err = unmount(s.mountpoint, s.viaHelper)
		if err != nil && !errors.Is(err, unix.EINVAL) {
			s.log.Warn("unmount failed", "mountpoint", s.mountpoint, "err", err)
		} else {
			err = nil
		}
		s.closeAllPipes()
		select {
		case <-s.done:
			return
		case <-ctx.Done():
		}
		s.log.Warn("open files hold the mount; aborting the connection")
		abortConnection(atomic.LoadUint32(&s.conn))
		select {
		case <-s.done:
		case <-time.After(2 * time.Second):
			err = errors.Join(err, errors.New("connection still held open after abort"))
		}
	})
	return err
}

func (s *Server) closeAllPipes() {
	for _, pn := range s.tree.closeAll() {
		s.linkMu.Lock()
		s.unlinkLocked(pn)
		s.linkMu.Unlock()
		pn.p.Close()
	}
}
