package bench

// workloads are W1–W7 of issue 3 and W8 (links) of issue 4, in the
// order they run.
var workloads = []workload{
	{"W1", "single 64 B messages", runW1},
	{"W2", "4 KiB and 64 KiB messages", runW2},
	{"W3", "128 KiB batches of 64 B lines", runW3},
	{"W4", "latency", runW4},
	{"W5", "16 writers and 16 readers", runW5},
	{"W6", "scale", runW6},
	{"W7", "memory", runW7},
	{"W8", "link tcp between two mounts", runW8},
}

// allTransports run the message workloads; the socket has no byte-stream
// workload (W3).
var allTransports = []transport{tPipefs, tFIFO, tSocket}
