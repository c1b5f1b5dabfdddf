package main

import "testing"

func TestHuman(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 9999: "9999", 10_000: "10.0k", 123_456: "123.5k",
		999_999: "1.0M", 1_234_567: "1.2M", 5_000_000_000: "5.0G", 1 << 63: "9.2E"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		1 << 20: "1.0 MiB", 1610612736: "1.5 GiB", 1<<40 - 1: "1.0 TiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1048576: "1,048,576", -12345: "-12,345"} {
		if got := grouped(n); got != want {
			t.Errorf("grouped(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for s, want := range map[float64]string{0: "0s", 12.5: "13s", 3600: "1h0m0s", 93784.6: "1d2h3m5s", 86400 * 400: "400d0s"} {
		if got := humanDuration(s); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", s, got, want)
		}
	}
}
