package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"pipefs/bench"
)

// hiddenBenchFlags scale W6 and W7 down for the smoke test; they are not
// in the usage text, and their defaults are the numbers.
var hiddenBenchFlags = map[string]bool{"scale-pipes": true, "scale-readers": true, "w7-messages": true}

func cmdBench(args []string) error {
	// `pipefs bench client ROLE ...` is the benchmark's own client,
	// started by the driver below; users never type it.
	if len(args) > 0 && args[0] == bench.ClientCommand {
		return bench.ClientMain(args[1:], os.Stdout)
	}
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), `Usage: pipefs bench [flags]

Measures pipefs against the kernel's own pipes on this machine: each
workload (%s) runs over a pipefs pipe, a FIFO and, where it
has messages, an AF_UNIX SOCK_SEQPACKET socketpair, alternating round by
round, and one table shows the median and range of each figure and the
ratio pipefs/FIFO. W8 measures W1 and W3 across two mounts joined by
link tcp over loopback, against the same workloads on a local pipe.
Writers and readers are separate processes (this binary started again).
See docs/performance.md.

Flags:
`, strings.Join(bench.Workloads(), " "))
		fl.VisitAll(func(f *flag.Flag) {
			if hiddenBenchFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(fl.Output(), "  --%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(fl.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(fl.Output())
		})
	}
	var (
		mount    = fl.String("mount", "", "use this pipefs mount instead of mounting private ones in a temporary directory")
		duration = fl.Duration("duration", 3*time.Second, "how long each measurement sends")
		rounds   = fl.Int("rounds", 5, "rounds of every measurement")
		jsonOut  = fl.Bool("json", false, "print the results as JSON instead of a table")
		only     = fl.String("only", "", "comma-separated workloads to run, e.g. W1,W4 or W8 (default all)")
		pipes    = fl.Int("scale-pipes", 10000, "W6: pipes to create")
		parked   = fl.Int("scale-readers", 1000, "W6: readers to park")
		messages = fl.Int("w7-messages", 1000000, "W7: messages to queue")
	)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErrorf("bench takes no arguments (see pipefs bench --help)")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the pipefs binary: %w", err)
	}
	opts := bench.Options{
		Exe:           exe,
		ClientArgs:    []string{"bench", bench.ClientCommand},
		Mount:         *mount,
		Duration:      *duration,
		Rounds:        *rounds,
		Pipes:         *pipes,
		ParkedReaders: *parked,
		Messages:      *messages,
		Version:       version,
		Progress:      progressLine(),
	}
	if *only != "" {
		opts.Only = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, opts)
	opts.Progress("")
	if errors.Is(err, context.Canceled) {
		return errors.New("bench: interrupted")
	}
	if err != nil {
		return err
	}
	if *jsonOut {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		return err
	}
	if len(rep.Failures) > 0 {
		return errors.New("the run had failures (see FAILED above); its figures are not valid")
	}
	return nil
}

// progressLine shows progress on stderr: one line rewritten in place on
// a terminal, a line per step otherwise. An empty message clears it.
func progressLine() func(string) {
	fi, err := os.Stderr.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return func(msg string) {
		switch {
		case tty:
			fmt.Fprintf(os.Stderr, "\r\033[K%s", msg)
		case msg != "":
			fmt.Fprintf(os.Stderr, "bench: %s\n", msg)
		}
	}
}
