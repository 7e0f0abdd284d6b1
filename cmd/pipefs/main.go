// Command pipefs serves message pipes as files over FUSE.
//
//	pipefs mount [flags] MOUNTPOINT   serve a mount in the foreground
//	pipefs umount MOUNTPOINT          unmount it cleanly
//	pipefs version                    print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `pipefs serves message pipes as files: each directory of the mount is a
pipe with the files in, out, pending and ctl.

Usage:
  pipefs mount [flags] MOUNTPOINT   mount and serve in the foreground
  pipefs umount MOUNTPOINT          unmount cleanly (the daemon exits 0)
  pipefs version                    print the version
  pipefs COMMAND --help             help on a command

See docs/guide.md and docs/files.md.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "mount":
		err = cmdMount(args[1:])
	case "umount", "unmount":
		err = cmdUmount(args[1:])
	case "version", "--version", "-version":
		fmt.Println("pipefs", version)
	case "help", "-h", "--help", "-help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "pipefs: unknown command %q (try pipefs --help)\n", args[0])
		return exitUsage
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(os.Stderr, "pipefs: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(os.Stderr, "pipefs: %v\n", err)
		return exitError
	}
}

var errUsage = errors.New("usage")

// usageErrorf reports a command-line mistake (exit code 2).
func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, and returns the positional ones.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		args = fl.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
