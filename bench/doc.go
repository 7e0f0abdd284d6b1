// Package bench is `pipefs bench`: it measures pipefs against the
// kernel's own pipes on the machine it runs on, in the same run, so that
// users can see what the file interface costs and what it buys.
//
// # Workloads
//
// W1–W7 of docs/performance.md: single 64 B messages (W1), 4 KiB and
// 64 KiB messages (W2), 128 KiB writes of 64 B lines read in batch mode
// (W3), latency (W4), 16 writers and 16 readers on one pipe (W5), 10,000
// pipes and 1,000 parked readers beside W1 (W6), and the daemon's memory
// per queued message (W7). Each runs over a pipefs pipe, a FIFO, and an
// AF_UNIX SOCK_SEQPACKET socketpair where it has messages, taking turns
// round by round so that a drift of the machine hits all of them alike.
// W8 runs W1 and W3 across two mounts joined by `link tcp` over
// loopback, each round beside the same workload on a local pipe.
//
// # Processes
//
// The driver ([Run]) never opens a file of the mount. It mounts private
// mounts by starting the pipefs binary (`pipefs mount DIR`), because a
// process that serves a FUSE mount must not also be its client, and it
// starts every writer, reader and namespace operation as a client: the
// same binary again, entering [ClientMain]. Clients use raw system calls
// on blocking descriptors and retry EINTR, which the Go runtime's
// preemption signals cause in blocked FUSE requests. They report back
// one JSON line each, with CLOCK_MONOTONIC timestamps that every process
// of the machine shares.
//
// # Files
//
// runner.go runs the workloads and rounds; workloads.go lists them and
// w_stream.go, w_latency.go, w_scale.go, w_memory.go and w_link.go
// implement them; transport.go makes pipes, FIFOs and sockets; spawn.go
// starts clients and mount.go private daemons. The clients are client*.go, their
// message format message.go, their system calls sys_linux.go. stats.go,
// report.go and table.go summarise and print the results.
package bench
