package fs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fsType is the filesystem type the mount shows in /proc/mounts.
const fsType = "fuse.pipefs"

// ErrLiveMount is returned when the mount point already serves pipefs.
var ErrLiveMount = errors.New("already a live pipefs mount")

// mountOptions are the FUSE mount options common to both ways of mounting.
func (s *Server) mountOptions() []string {
	o := []string{
		"default_permissions", // the kernel checks the files' modes
		"max_read=" + strconv.Itoa(maxWrite),
	}
	if s.opts.AllowOther {
		o = append(o, "allow_other")
	}
	return o
}

// mount opens /dev/fuse and mounts it on the mount point: directly with
// mount(2) when privileged, through the setuid fusermount3 helper
// otherwise. It returns the device descriptor.
func (s *Server) mount(mp string) (fd int, viaHelper bool, err error) {
	if os.Geteuid() == 0 {
		fd, err = s.mountDirect(mp)
		if err == nil {
			return fd, false, nil
		}
		if _, lookErr := exec.LookPath("fusermount3"); lookErr != nil {
			return -1, false, err
		}
		s.log.Debug("direct mount failed, trying fusermount3", "err", err)
	}
	fd, err = s.mountHelper(mp)
	return fd, true, err
}

func (s *Server) mountDirect(mp string) (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	opts := append([]string{
		"fd=" + strconv.Itoa(fd),
		"rootmode=40000",
		"user_id=" + strconv.Itoa(os.Geteuid()),
		"group_id=" + strconv.Itoa(os.Getegid()),
	}, s.mountOptions()...)
	if err := unix.Mount("pipefs", mp, fsType, unix.MS_NOSUID|unix.MS_NODEV, strings.Join(opts, ",")); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount %s: %w", mp, err)
	}
	return fd, nil
}

// mountHelper runs fusermount3, which opens /dev/fuse, mounts it, and
// passes the descriptor back over the socket named by _FUSE_COMMFD.
func (s *Server) mountHelper(mp string) (int, error) {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		return -1, fmt.Errorf("mounting without root needs fusermount3 (Debian package fuse3): %w", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socketpair: %w", err)
	}
	local := os.NewFile(uintptr(pair[0]), "fusermount-local")
	remote := os.NewFile(uintptr(pair[1]), "fusermount-remote")
	defer local.Close()
	opts := append([]string{"fsname=pipefs", "subtype=pipefs", "nosuid", "nodev"}, s.mountOptions()...)
	cmd := exec.Command(bin, "-o", strings.Join(opts, ","), "--", mp)
	cmd.Env = append(os.Environ(), "_FUSE_COMMFD=3")
	cmd.ExtraFiles = []*os.File{remote}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	remote.Close()
	if err != nil {
		return -1, fmt.Errorf("fusermount3: %s", strings.TrimSpace(firstNonEmpty(stderr.String(), err.Error())))
	}
	buf := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(local.Fd()), buf, oob, 0)
	if err != nil {
		return -1, fmt.Errorf("receive /dev/fuse from fusermount3: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("fusermount3 sent no descriptor")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("fusermount3 sent no descriptor")
	}
	unix.CloseOnExec(fds[0])
	return fds[0], nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unmount detaches the mount. Lazily: readers blocked in the mount (or
// shells sitting in it) must not keep it attached; the connection ends
// when the last of them lets go.
func unmount(mp string, viaHelper bool) error {
	if !viaHelper {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err == nil || !errors.Is(err, unix.EPERM) {
			return err
		}
	}
	out, err := exec.Command("fusermount3", "-u", "-z", "--", mp).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -u: %s", strings.TrimSpace(firstNonEmpty(string(out), err.Error())))
	}
	return nil
}

// Unmount detaches a pipefs mount from outside the daemon, for a mount whose
// daemon is gone (its mount point answers ENOTCONN).
func Unmount(mp string) error {
	return unmount(mp, os.Geteuid() != 0)
}

// IsStale reports whether err is what a mount whose daemon died answers:
// ENOTCONN, or ECONNABORTED for requests the kernel had queued for a
// daemon serving through FUSE over io_uring while it tore the
// connection down (the first request after the death, typically).
func IsStale(err error) bool {
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// prepareMountpoint makes sure mp can be mounted: it creates a missing
// directory, refuses a live pipefs mount, and detaches a stale one (its
// daemon died: the mount point answers ENOTCONN).
func (s *Server) prepareMountpoint(mp string) error {
	var st unix.Stat_t
	err := unix.Stat(mp, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		if err := os.MkdirAll(mp, 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
		return nil
	case IsStale(err):
		s.log.Info("detaching stale mount left by a dead daemon", "mountpoint", mp)
		if err := Unmount(mp); err != nil {
			return fmt.Errorf("stale mount at %s: %w", mp, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("mount point: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("mount point %s is not a directory", mp)
	}
	if IsMounted(mp) {
		// A stat may be answered from the kernel's attribute cache for
		// a second after the daemon died; an open of ctl always asks
		// the daemon.
		if _, err := os.ReadFile(filepath.Join(mp, "ctl")); IsStale(err) {
			s.log.Info("detaching stale mount left by a dead daemon", "mountpoint", mp)
			if err := Unmount(mp); err != nil {
				return fmt.Errorf("stale mount at %s: %w", mp, err)
			}
			return nil
		}
		return fmt.Errorf("%s: %w", mp, ErrLiveMount)
	}
	return nil
}

// IsMounted reports whether a pipefs mount sits at mp, per
// /proc/self/mountinfo.
func IsMounted(mp string) bool {
	abs, err := filepath.Abs(mp)
	if err != nil {
		return false
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		if unescapeMountPath(fields[4]) == abs && fields[sep+1] == fsType {
			return true
		}
	}
	return false
}

// unescapeMountPath undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// abortConnection ends FUSE connection conn (the minor number of the
// mount's device) through the fusectl filesystem, which a shutdown uses
// when open files would otherwise keep the connection alive. It needs
// privilege and a mounted fusectl; without them it does nothing.
func abortConnection(conn uint32) {
	if conn == 0 {
		return
	}
	dir := "/sys/fs/fuse/connections"
	if _, err := os.Stat(dir + "/" + strconv.Itoa(int(conn))); err != nil {
		return
	}
	_ = os.WriteFile(fmt.Sprintf("%s/%d/abort", dir, conn), []byte("1"), 0)
}

// connectionOf returns the FUSE connection number of the mount at mp.
func connectionOf(mp string) (uint32, error) {
	// Make sure the path is still the FUSE mount and not what lies
	// beneath a detached one, whose device number means nothing here.
	var sfs unix.Statfs_t
	if err := unix.Statfs(mp, &sfs); err != nil {
		return 0, err
	}
	if sfs.Type != unix.FUSE_SUPER_MAGIC {
		return 0, fmt.Errorf("%s is not a FUSE mount", mp)
	}
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		return 0, err
	}
	return unix.Minor(st.Dev), nil
}

// abort ends the FUSE connection from inside the daemon, for a failure
// that would otherwise leave requests unanswered: every waiting and later
// request fails, and the loops stop. Through fusectl where it is mounted,
// else with a forced unmount (FUSE aborts the connection on MNT_FORCE).
func (s *Server) abort() {
	if c := atomic.LoadUint32(&s.conn); c != 0 {
		abortConnection(c)
	}
	_ = unix.Unmount(s.mountpoint, unix.MNT_FORCE)
}
