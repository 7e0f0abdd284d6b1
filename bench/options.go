package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	// Exe is the pipefs binary: it serves private mounts (`Exe mount
	// DIR`) and runs the clients (`Exe ClientArgs... ROLE`).
	Exe string
	// ClientArgs lead from Exe's command line to ClientMain, e.g.
	// {"bench", "client"}.
	ClientArgs []string
	// Mount is an existing pipefs mount to use; empty mounts private
	// ones in a temporary directory. W8 always mounts a private second
	// mount for the far side of its links; Mount is the near side.
	Mount string
	// Duration is how long each measurement sends.
	Duration time.Duration
	// Rounds is how many times each measurement is repeated; the
	// transports alternate within a round.
	Rounds int
	// Only selects workloads by name (W1...W8); empty runs all.
	Only []string
	// Pipes and ParkedReaders scale W6, Messages W7; zero means the
	// issue's 10,000, 1,000 and 1,000,000.
	Pipes, ParkedReaders, Messages int
	// Version is shown in the report.
	Version string
	// Progress, if set, receives a line whenever a measurement starts.
	Progress func(string)
}

// Workloads lists the names of the workloads, in the order they run.
func Workloads() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return names
}

func (o *Options) check() error {
	if o.Exe == "" {
		return errors.New("no pipefs binary (Options.Exe)")
	}
	if o.Duration <= 0 {
		return fmt.Errorf("duration %v: want > 0", o.Duration)
	}
	if o.Rounds <= 0 {
		return fmt.Errorf("rounds %d: want > 0", o.Rounds)
	}
	if o.Pipes == 0 {
		o.Pipes = 10000
	}
	if o.ParkedReaders == 0 {
		o.ParkedReaders = 1000
	}
	if o.Messages == 0 {
		o.Messages = 1000000
	}
	if o.Pipes < 0 || o.ParkedReaders < 0 || o.Messages < 0 {
		return errors.New("W6 and W7 sizes must be positive")
	}
	if o.ParkedReaders > o.Pipes {
		return fmt.Errorf("%d parked readers need as many pipes, not %d", o.ParkedReaders, o.Pipes)
	}
	for i, w := range o.Only {
		o.Only[i] = strings.ToUpper(strings.TrimSpace(w))
		if !slices.Contains(Workloads(), o.Only[i]) {
			return fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(Workloads(), ", "))
		}
	}
	return nil
}

func (o *Options) selected(name string) bool {
	return len(o.Only) == 0 || slices.Contains(o.Only, name)
}
