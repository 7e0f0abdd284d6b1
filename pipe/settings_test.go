package pipe_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"pipefs/pipe"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want pipe.Mode
		ok   bool
	}{
		{"lines", pipe.Lines, true},
		{"packets", pipe.Packets, true},
		{"Lines", 0, false},
		{"packet", 0, false},
		{"", 0, false},
		{" lines", 0, false},
	}
	for _, tt := range tests {
		got, err := pipe.ParseMode(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, pipe.ErrInvalid) {
			t.Errorf("ParseMode(%q) = %v, %v; want an error wrapping ErrInvalid", tt.in, got, err)
		}
	}
	for _, m := range []pipe.Mode{pipe.Lines, pipe.Packets} {
		if got, err := pipe.ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%v.String()) = %v, %v; want it back", m, got, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // -1: refused
	}{
		{"0", 0},
		{"1", 1},
		{"007", 7},
		{"4096", 4096},
		{" 12 ", 12},
		{"1B", 1},
		{"1b", 1},
		{"1K", 1 << 10},
		{"1k", 1 << 10},
		{"3KB", 3 << 10},
		{"3KiB", 3 << 10},
		{"3kib", 3 << 10},
		{"2M", 2 << 20},
		{"2MiB", 2 << 20},
		{"5G", 5 << 30},
		{"5gib", 5 << 30},
		{"1024G", pipe.MaxCapacity},
		{"1099511627776", pipe.MaxCapacity},

		{"", -1},
		{" ", -1},
		{"B", -1},
		{"K", -1},
		{"KiB", -1},
		{"iB", -1},
		{"1iB", -1},
		{"1i", -1},
		{"1Ki", -1},
		{"1KK", -1},
		{"1 K", -1},
		{"1T", -1},
		{"1.5K", -1},
		{"-1", -1},
		{"-0", -1},
		{"+1", -1},
		{"0x10", -1},
		{"1_000", -1},
		{"1025G", -1},
		{"1099511627777", -1},
		{"9223372036854775807", -1},
		{"99999999999999999999", -1},
		{"8388608G", -1},
	}
	for _, tt := range tests {
		got, err := pipe.ParseSize(tt.in)
		switch {
		case tt.want >= 0 && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
		case tt.want < 0 && !errors.Is(err, pipe.ErrInvalid):
			t.Errorf("ParseSize(%q) = %d, %v; want an error wrapping ErrInvalid", tt.in, got, err)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		s    pipe.Settings
		ok   bool
	}{
		{"defaults", pipe.DefaultSettings(), true},
		{"smallest", lines(1, 1), true},
		{"largest capacity", lines(pipe.MaxCapacity, pipe.MaxCapacity), true},
		{"batch lines", pipe.Settings{Capacity: 10, MaxMessage: 10, Batch: true}, true},
		{"packets max", packets(pipe.DefaultCapacity, pipe.MaxPacket), true},
		{"zero capacity", lines(0, 1), false},
		{"negative capacity", lines(-1, 1), false},
		{"capacity too large", lines(pipe.MaxCapacity+1, 1), false},
		{"zero maxmessage", lines(10, 0), false},
		{"maxmessage over capacity", lines(10, 11), false},
		{"packet over MaxPacket", packets(pipe.DefaultCapacity, pipe.MaxPacket+1), false},
		{"batch packets", pipe.Settings{Mode: pipe.Packets, Capacity: 10, MaxMessage: 10, Batch: true}, false},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if tt.ok && err != nil {
			t.Errorf("%s: Validate(%+v) = %v; want nil", tt.name, tt.s, err)
		}
		if !tt.ok && !errors.Is(err, pipe.ErrInvalid) {
			t.Errorf("%s: Validate(%+v) = %v; want an error wrapping ErrInvalid", tt.name, tt.s, err)
		}
	}
}

func TestDefaultSettings(t *testing.T) {
	want := pipe.Settings{Mode: pipe.Lines, Capacity: 8 << 20, MaxMessage: 1044480}
	if got := pipe.DefaultSettings(); got != want {
		t.Fatalf("DefaultSettings() = %+v; want %+v", got, want)
	}
	if pipe.MaxPacket != 1044480 || pipe.DefaultMaxMessage != pipe.MaxPacket {
		t.Fatalf("MaxPacket = %d, DefaultMaxMessage = %d; want 1044480 both", pipe.MaxPacket, pipe.DefaultMaxMessage)
	}
}

func TestApply(t *testing.T) {
	def := pipe.DefaultSettings()
	with := func(f func(*pipe.Settings)) pipe.Settings {
		s := def
		f(&s)
		return s
	}
	pk := with(func(s *pipe.Settings) { s.Mode = pipe.Packets })
	batch := with(func(s *pipe.Settings) { s.Batch = true })
	tests := []struct {
		from pipe.Settings
		cmd  string
		want pipe.Settings
		err  error // nil, ErrInvalid or ErrUnknownCommand
	}{
		{def, "", def, nil},
		{def, "   ", def, nil},
		{def, "mode packets", pk, nil},
		{pk, "mode lines", def, nil},
		{def, "  mode \t packets  ", pk, nil},
		{def, "mode lines", def, nil},
		{def, "capacity 16M", with(func(s *pipe.Settings) { s.Capacity = 16 << 20 }), nil},
		{def, "capacity 1G", with(func(s *pipe.Settings) { s.Capacity = 1 << 30 }), nil},
		{def, "capacity 100", with(func(s *pipe.Settings) { s.Capacity, s.MaxMessage = 100, 100 }), nil},
		{def, "capacity 1", with(func(s *pipe.Settings) { s.Capacity, s.MaxMessage = 1, 1 }), nil},
		{def, "capacity 1024G", with(func(s *pipe.Settings) { s.Capacity = pipe.MaxCapacity }), nil},
		{def, "maxmessage 4K", with(func(s *pipe.Settings) { s.MaxMessage = 4096 }), nil},
		{def, "maxmessage 8M", with(func(s *pipe.Settings) { s.MaxMessage = 8 << 20 }), nil},
		{def, "maxmessage 1", with(func(s *pipe.Settings) { s.MaxMessage = 1 }), nil},
		{pk, "maxmessage 1020K", with(func(s *pipe.Settings) { s.Mode, s.MaxMessage = pipe.Packets, 1020<<10 }), nil},
		{with(func(s *pipe.Settings) { s.MaxMessage = 2 << 20 }), "mode packets", pk, nil},
		{def, "batch on", batch, nil},
		{batch, "batch off", def, nil},
		{batch, "batch on", batch, nil},

		{def, "mode", def, pipe.ErrInvalid},
		{def, "mode packets lines", def, pipe.ErrInvalid},
		{def, "mode fifo", def, pipe.ErrInvalid},
		{def, "mode PACKETS", def, pipe.ErrInvalid},
		{batch, "mode packets", batch, pipe.ErrInvalid},
		{def, "capacity", def, pipe.ErrInvalid},
		{def, "capacity 0", def, pipe.ErrInvalid},
		{def, "capacity -1", def, pipe.ErrInvalid},
		{def, "capacity 1.5M", def, pipe.ErrInvalid},
		{def, "capacity 1025G", def, pipe.ErrInvalid},
		{def, "capacity 1 2", def, pipe.ErrInvalid},
		{def, "maxmessage 0", def, pipe.ErrInvalid},
		{def, "maxmessage 9M", def, pipe.ErrInvalid},
		{def, "maxmessage", def, pipe.ErrInvalid},
		{def, "maxmessage lots", def, pipe.ErrInvalid},
		{pk, "maxmessage 1021K", pk, pipe.ErrInvalid},
		{pk, "maxmessage 1M", pk, pipe.ErrInvalid},
		{pk, "batch on", pk, pipe.ErrInvalid},
		{def, "batch yes", def, pipe.ErrInvalid},
		{def, "batch", def, pipe.ErrInvalid},
		{def, "batch on off", def, pipe.ErrInvalid},
		{def, "clear", def, pipe.ErrUnknownCommand},
		{def, "flush now", def, pipe.ErrUnknownCommand},
		{def, "Mode lines", def, pipe.ErrUnknownCommand},
	}
	for _, tt := range tests {
		got, err := tt.from.Apply(tt.cmd)
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%+v.Apply(%q) error = %v; want %v", tt.from, tt.cmd, err, tt.err)
		}
		if err != nil && !errors.Is(err, pipe.ErrInvalid) {
			t.Errorf("Apply(%q) error %v does not wrap ErrInvalid", tt.cmd, err)
		}
		if got != tt.want {
			t.Errorf("%+v.Apply(%q) = %+v; want %+v", tt.from, tt.cmd, got, tt.want)
		}
		if verr := got.Validate(); verr != nil {
			t.Errorf("Apply(%q) returned invalid settings: %v", tt.cmd, verr)
		}
	}
}

func TestNewRefusesInvalidSettings(t *testing.T) {
	p, err := pipe.New("x", lines(10, 20))
	if p != nil || !errors.Is(err, pipe.ErrInvalid) {
		t.Fatalf("New with maxmessage over capacity = %v, %v; want nil, ErrInvalid", p, err)
	}
}

func TestName(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	if got := p.Name(); got != "test" {
		t.Fatalf("Name() = %q; want %q", got, "test")
	}
	p.SetName("other")
	if got := p.Name(); got != "other" {
		t.Fatalf("Name() after SetName = %q; want %q", got, "other")
	}
}

func TestControl(t *testing.T) {
	tests := []struct {
		cmds []string
		want pipe.Settings
		err  error // of the last command
	}{
		{[]string{"capacity 64K", "maxmessage 1K", "batch on"},
			pipe.Settings{Capacity: 64 << 10, MaxMessage: 1 << 10, Batch: true}, nil},
		{[]string{"mode packets", "maxmessage 2K"}, packets(pipe.DefaultCapacity, 2<<10), nil},
		{[]string{"capacity 100", "capacity 1M"}, lines(1<<20, 100), nil},
		{[]string{"capacity 100", "maxmessage 101"}, lines(100, 100), pipe.ErrInvalid},
		{[]string{"mode packets", "batch on"}, packets(pipe.DefaultCapacity, pipe.MaxPacket), pipe.ErrInvalid},
		{[]string{"clear"}, pipe.DefaultSettings(), nil},
		{[]string{"  clear  "}, pipe.DefaultSettings(), nil},
		{[]string{"clear all"}, pipe.DefaultSettings(), pipe.ErrInvalid},
		{[]string{"rename x"}, pipe.DefaultSettings(), pipe.ErrUnknownCommand},
		{[]string{""}, pipe.DefaultSettings(), nil},
	}
	for _, tt := range tests {
		p := newPipe(t, pipe.DefaultSettings())
		var err error
		for _, c := range tt.cmds {
			err = p.Control(c)
		}
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("Control(%q) = %v; want %v", tt.cmds, err, tt.err)
		}
		if got := p.Settings(); got != tt.want {
			t.Errorf("after Control(%q): Settings() = %+v; want %+v", tt.cmds, got, tt.want)
		}
		if got := p.Stats().Settings; got != tt.want {
			t.Errorf("after Control(%q): Stats().Settings = %+v; want %+v", tt.cmds, got, tt.want)
		}
	}
}

func TestControlClear(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	w, r := p.NewWriter(), p.NewReader()
	write(t, w, "one\ntwo\nthree\n")
	if err := p.Control("clear"); err != nil {
		t.Fatalf("Control(clear) = %v", err)
	}
	checkStats(t, p, pipe.Stats{Enqueued: 3})
	mustBeEmpty(t, r)
}

func TestSetSettingsRefusesInvalid(t *testing.T) {
	p := newPipe(t, pipe.DefaultSettings())
	if err := p.SetSettings(lines(10, 11)); !errors.Is(err, pipe.ErrInvalid) {
		t.Fatalf("SetSettings(maxmessage > capacity) = %v; want ErrInvalid", err)
	}
	if got := p.Settings(); got != pipe.DefaultSettings() {
		t.Fatalf("a refused SetSettings changed the settings to %+v", got)
	}
}

// Commands sent at once by different clients must all take effect: each
// is a read-modify-write of the settings.
func TestControlConcurrent(t *testing.T) {
	cmds := []string{"batch on", "maxmessage 1000", "capacity 4M"}
	want := pipe.Settings{Capacity: 4 << 20, MaxMessage: 1000, Batch: true}
	for i := range 300 {
		p := newPipe(t, pipe.DefaultSettings())
		var wg sync.WaitGroup
		errs := make([]error, len(cmds))
		for j, c := range cmds {
			wg.Go(func() { errs[j] = p.Control(c) })
		}
		wg.Wait()
		for j, err := range errs {
			if err != nil {
				t.Fatalf("Control(%q) = %v", cmds[j], err)
			}
		}
		if got := p.Settings(); got != want {
			t.Fatalf("round %d: after %q at once, Settings() = %+v; want %+v (an update was lost)", i, cmds, got, want)
		}
	}
}

func ExamplePipe_Control() {
	p, _ := pipe.New("jobs", pipe.DefaultSettings())
	defer p.Close()
	fmt.Println(p.Control("capacity 64K"), p.Control("maxmessage 128K"))
	fmt.Printf("%+v\n", p.Settings())
	// Output:
	// <nil> maxmessage 131072 exceeds capacity 65536
	// {Mode:lines Capacity:65536 MaxMessage:65536 Batch:false}
}
