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
	"io"
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
  pipefs bench [flags]              measure pipefs against FIFOs and sockets
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
	case "bench":
		err = cmdBench(args[1:])
	case "version", "--version", "-version":
		err = cmdVersion(args[1:])
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
	case errors.As(err, new(usageError)):
		fmt.Fprintf(os.Stderr, "pipefs: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(os.Stderr, "pipefs: %v\n", err)
		return exitError
	}
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func cmdVersion(args []string) error {
	fl := flag.NewFlagSet("version", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprintln(fl.Output(), "Usage: pipefs version\n\nPrints the version of pipefs.") }
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("version takes no arguments")
	}
	fmt.Println("pipefs", version)
	return nil
}

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, and returns the positional ones. A bad flag is one
// line naming the command's --help; --help prints the usage to stdout.
func parseInterspersed(fl *flag.FlagSet, args []string) ([]string, error) {
	usage := fl.Usage
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fl.SetOutput(os.Stdout)
				usage()
				return nil, err
			}
			return nil, usageErrorf("%s: %v (see pipefs %s --help)", fl.Name(), err, fl.Name())
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
