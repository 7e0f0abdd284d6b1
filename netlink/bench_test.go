package netlink

import (
	"context"
	"fmt"
	"net"
	"testing"
)

// BenchmarkSessionTCP measures one-way throughput of small and large messages
// between two sessions over loopback TCP, endpoints included.
func BenchmarkSessionTCP(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchSession(b, size) })
	}
}

func benchSession(b *testing.B, size int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ea, eb := newMemEndpoint(8<<20), newMemEndpoint(8<<20)
	sa, _ := NewSession(Config{}, ea)
	sb, _ := NewSession(Config{}, eb)
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
	b.SetBytes(int64(size))
	b.ResetTimer()
	go func() {
		for range b.N {
			ea.send(msg)
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
