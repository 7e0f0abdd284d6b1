package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"pipefs/fs"
)

func cmdUmount(args []string) error {
	fl := flag.NewFlagSet("umount", flag.ContinueOnError)
	timeout := fl.Duration("timeout", 10*time.Second, "how long to wait for the daemon to finish")
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `Usage: pipefs umount MOUNTPOINT

Asks the daemon serving MOUNTPOINT to shut down as on SIGTERM: blocked
readers get end of file, blocked writers EPIPE, the mount is detached and
the daemon exits 0. A stale mount whose daemon died is detached directly.

Flags:
`)
		fl.PrintDefaults()
	}
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("umount takes one MOUNTPOINT")
	}
	mp, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if !fs.IsMounted(mp) {
		return fmt.Errorf("%s is not a pipefs mount", mp)
	}
	status, err := os.ReadFile(filepath.Join(mp, "ctl"))
	if fs.IsStale(err) {
		return fs.Unmount(mp) // the daemon is gone
	}
	if err != nil {
		return fmt.Errorf("read %s/ctl: %w", mp, err)
	}
	pid := daemonPID(status)
	if pid <= 0 || !isPipefsDaemon(pid) || syscall.Kill(pid, syscall.SIGTERM) != nil {
		// Not a daemon we can signal (another PID namespace, another
		// user): detach the mount; the daemon sees the connection end.
		return fs.Unmount(mp)
	}
	deadline := time.Now().Add(*timeout)
	for fs.IsMounted(mp) {
		if time.Now().After(deadline) {
			return fmt.Errorf("daemon %d did not unmount %s within %v", pid, mp, *timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// daemonPID reads the "pid N" line of the root ctl file.
func daemonPID(status []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pid "); ok {
			pid, _ := strconv.Atoi(v)
			return pid
		}
	}
	return 0
}

// isPipefsDaemon checks that pid is a process holding /dev/fuse open, so
// that a PID read from a mount in another PID namespace is never signalled
// by mistake.
func isPipefsDaemon(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && t == "/dev/fuse" {
			return true
		}
	}
	return false
}
