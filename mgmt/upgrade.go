package mgmt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// An upgrade in place (SIGUSR2), as nginx does it: the daemon starts the
// binary now at its path (the one an operator installed over it) with its
// own arguments, so the config file is read anew. The successor takes over
// the L7 listeners through inherited descriptors (queued connections are
// not lost, no endpoint goes dark), the pinned maps and the XDP links as
// any restart does, and says when its API serves. Only then does this
// daemon hand off: it detaches its sk_lookup program, stops accepting and
// drains the requests in flight. A successor that fails to start or does
// not say it is ready in time is stopped, and this daemon serves on.
//
// The successor is this daemon's child and outlives it; a supervisor that
// tracks the daemon's PID follows it through `sluice status`.

// handoffEnv tells a successor how many listener descriptors follow the
// ready pipe (descriptor 3) it inherits.
const handoffEnv = "SLUICE_HANDOFF_LISTENERS"

// successorReadyTimeout bounds the successor's start: it restores the whole
// desired state (a million-entry list takes seconds) before it is ready.
const successorReadyTimeout = 2 * time.Minute

// handoffDrain bounds how long a daemon that handed off waits for its
// requests in flight (long-lived streams, WebSockets) before it exits.
const handoffDrain = 30 * time.Second

// inherited is what a predecessor passed to this daemon.
type inherited struct {
	ready     *os.File // written once this daemon serves
	listeners []*net.TCPListener
}

// inheritedFromPredecessor returns the descriptors a predecessor passed, or
// nil when this daemon was started some other way.
func inheritedFromPredecessor() (*inherited, error) {
	v, ok := os.LookupEnv(handoffEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(handoffEnv) // not for this daemon's own successor
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 2 {
		return nil, fmt.Errorf("%s=%q: want 1 or 2 listeners", handoffEnv, v)
	}
	in := &inherited{ready: os.NewFile(3, "handoff-ready")}
	for fd := 4; fd < 4+n; fd++ {
		f := os.NewFile(uintptr(fd), "handoff-listener")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			in.close()
			return nil, fmt.Errorf("inherited listener (descriptor %d): %w", fd, err)
		}
		tl, ok := ln.(*net.TCPListener)
		if !ok {
			ln.Close()
			in.close()
			return nil, fmt.Errorf("inherited descriptor %d is a %T, not a TCP listener", fd, ln)
		}
		in.listeners = append(in.listeners, tl)
	}
	return in, nil
}

// signalReady tells the predecessor that this daemon serves.
func (in *inherited) signalReady() error {
	_, err := in.ready.Write([]byte("ready\n"))
	return errors.Join(err, in.ready.Close())
}

// close releases what was not taken over.
func (in *inherited) close() {
	in.ready.Close()
	for _, ln := range in.listeners {
		ln.Close()
	}
}

// startSuccessor runs the daemon's binary with its arguments, passing it
// the L7 listeners, and returns once the successor is ready; on failure it
// has stopped it, as it does when ctx ends first (the daemon is told to
// stop meanwhile). The caller keeps and closes listeners.
func startSuccessor(ctx context.Context, listeners []*os.File) (pid int, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the daemon's binary: %w", err)
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ready.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = append([]*os.File{readyW}, listeners...)
	cmd.Env = append(withoutEnv(os.Environ(), handoffEnv), fmt.Sprintf("%s=%d", handoffEnv, len(listeners)))
	err = cmd.Start()
	readyW.Close() // the successor holds the only write end: its exit is EOF
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	got := make(chan error, 1)
	go func() {
		line, err := io.ReadAll(io.LimitReader(ready, 16))
		switch {
		case err != nil:
			got <- err
		case string(line) != "ready\n":
			got <- errors.New("it exited before it was ready (its log says why)")
		default:
			got <- nil
		}
	}()
	select {
	case err = <-got:
	case <-time.After(successorReadyTimeout):
		err = fmt.Errorf("it was not ready within %s", successorReadyTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("this daemon was told to stop first: %w", ctx.Err())
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("successor %s (pid %d): %w", exe, cmd.Process.Pid, err)
	}
	go func() { _ = cmd.Wait() }() // reaped if this daemon outlives its drain
	return cmd.Process.Pid, nil
}

func withoutEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}
