package netlink

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// BenchmarkSessionTCP measures one-way throughput between two sessions
// over loopback TCP, endpoints included: single messages of 64 B and
// 4 KiB, and 64 B lines written 2,048 at a time (as a 128 KiB write to a
// pipe is), which cross as RUN frames; without a secret, and with one
// (every frame tagged).
func BenchmarkSessionTCP(b *testing.B) {
	for _, secret := range []string{"", "secret"} {
		name := "plain"
		if secret != "" {
			name = "tagged"
		}
		for _, size := range []int{64, 4096} {
			b.Run(fmt.Sprintf("%s/%dB", name, size), func(b *testing.B) { benchSession(b, []byte(secret), size, 1) })
		}
		b.Run(name+"/lines", func(b *testing.B) { benchSession(b, []byte(secret), 64, 2048) })
	}
}

func benchSession(b *testing.B, secret []byte, size, block int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ea, eb := newBatchEndpoint(8<<20), newMemEndpoint(8<<20)
	sa, _ := NewSession(Config{Secret: secret}, ea)
	sb, _ := NewSession(Config{Secret: secret}, eb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			sb.Run(ctx, c, Acceptor)
		}
		done <- struct{}{}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	go func() { sa.Run(ctx, c, Dialer); done <- struct{}{} }()
	msg := make([]byte, size)
	msg[size-1] = '\n'
	msgs := make([][]byte, block)
	for i := range msgs {
		msgs[i] = msg
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	go func() {
		for sent := 0; sent < b.N; sent += block {
			if block == 1 {
				ea.send(msg)
			} else {
				ea.sendBlock(msgs[:min(block, b.N-sent)]...)
			}
		}
	}()
	for range b.N {
		eb.recv(b)
	}
	b.StopTimer()
	cancel()
	<-done
	<-done
	sa.Close()
	sb.Close()
}
