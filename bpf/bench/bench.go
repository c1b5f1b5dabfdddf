// Package bench holds the reference BPF programs that `make bench` measures
// Sluice's datapath against, and the live-frames traffic generator.
package bench

//go:generate go tool bpf2go -tags linux -target bpfel Drop drop.c -- -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel Gen gen.c -- -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel TCP tcp.c -- -O2 -g -Wall -Werror
