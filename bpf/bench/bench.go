// Package bench holds the reference BPF programs that `make bench` measures
// Sluice's datapath against.
package bench

//go:generate go tool bpf2go -tags linux -target bpfel Drop drop.c -- -O2 -g -Wall -Werror
