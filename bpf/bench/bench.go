// Package bench holds the reference BPF programs that `make bench` measures
// Sluice's datapath against, and the traffic generators: live frames, and
// the TCP seeds and frame loop for kernels that refuse live frames.
package bench

//go:generate go tool bpf2go -tags linux -target bpfel Drop drop.c -- -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel Gen gen.c -- -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel TCP tcp.c -- -O2 -g -Wall -Werror
//go:generate go tool bpf2go -tags linux -target bpfel Loop loop.c -- -O2 -g -Wall -Werror
