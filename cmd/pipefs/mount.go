package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"pipefs/fs"
	"pipefs/netlink"
	"pipefs/pipe"
)

func cmdMount(args []string) error {
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), `Usage: pipefs mount [flags] MOUNTPOINT

Mounts pipefs on MOUNTPOINT (created if missing) and serves it in the
foreground. The mount is ready when MOUNTPOINT/ctl exists. SIGINT or
SIGTERM (or pipefs umount) unmounts it cleanly and exits 0.

Flags:
`)
		fl.PrintDefaults()
	}
	var (
		allowOther = fl.Bool("allow-other", false, "let other users use the mount (non-root needs user_allow_other in /etc/fuse.conf)")
		capacity   = fl.String("capacity", "8M", "default capacity of new pipes, in bytes (K, M, G suffixes)")
		maxMessage = fl.String("max-message", fmt.Sprint(pipe.DefaultMaxMessage), "default max message size of new pipes, in bytes (K, M, G suffixes)")
		debug      = fl.Bool("debug", false, "log every FUSE request")
		readers    = fl.Int("readers", 2, "goroutines reading requests from the kernel")
		ioURing    = fl.Bool("io-uring", true, "serve through FUSE over io_uring where the kernel offers it (Linux 6.14+, fuse module parameter enable_uring)")
		secretFile = fl.String("secret-file", "", "shared secret that TCP links prove (challenge-response; it never crosses the wire)")
		insecure   = fl.Bool("insecure", false, "allow TCP links and listeners off loopback without a secret")
		tlsCert    = fl.String("tls-cert", "", "certificate for TLS on TCP links (with --tls-key)")
		tlsKey     = fl.String("tls-key", "", "private key for --tls-cert")
		tlsCA      = fl.String("tls-ca", "", "CA that peers' certificates must chain to")
		handshake  = fl.Duration("link-handshake-timeout", netlink.DefaultHandshakeTimeout, "how long a TCP link's handshake may take: a peer that connects and says nothing costs its connection this long")
		cpuProfile = fl.String("cpuprofile", "", "write a CPU profile of the daemon to `FILE` when it exits")
	)
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("mount takes one MOUNTPOINT (see pipefs mount --help)")
	}
	defaults := pipe.DefaultSettings()
	if defaults.Capacity, err = pipe.ParseSize(*capacity); err != nil {
		return usageErrorf("--capacity: %v", err)
	}
	if defaults.MaxMessage, err = pipe.ParseSize(*maxMessage); err != nil {
		return usageErrorf("--max-message: %v", err)
	}
	if err := defaults.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if *handshake <= 0 {
		return usageErrorf("--link-handshake-timeout must be positive")
	}

	var secret []byte
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		if secret = bytes.TrimSpace(b); len(secret) == 0 {
			return fmt.Errorf("--secret-file %s is empty", *secretFile)
		}
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		if tlsConfig, err = netlink.LoadTLS(*tlsCert, *tlsKey, *tlsCA); err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := fs.New(fs.Options{
		Mountpoint: pos[0],
		AllowOther: *allowOther,
		Defaults:   defaults,
		Logger:     logger,
		Debug:      *debug,
		Version:    version,
		Readers:    *readers,
		NoIOURing:  !*ioURing,
		Secret:     secret,
		Insecure:   *insecure,
		TLS:        tlsConfig,

		HandshakeTimeout: *handshake,
	})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	if err := srv.Mount(); err != nil {
		return err
	}
	select {
	case sig := <-sigs:
		logger.Info("unmounting", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			return fmt.Errorf("unmount: %w", err)
		}
	case <-srv.Done():
		logger.Info("the kernel ended the connection (unmounted)")
	}
	return nil
}
