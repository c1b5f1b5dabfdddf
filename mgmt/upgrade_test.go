package mgmt

import (
	"context"
	"os"
	"strings"
	"testing"
)

// A test binary started as a successor (startSuccessor runs this binary
// with its arguments) exits at once instead of running the tests again.
func init() {
	if os.Getenv(handoffEnv) != "" {
		os.Exit(3)
	}
}

// A successor that exits before it says it is ready fails the upgrade with
// a reason; the caller then serves on.
func TestSuccessorThatExitsEarlyFailsTheUpgrade(t *testing.T) {
	pid, err := startSuccessor(context.Background(), nil)
	if err == nil {
		t.Fatalf("startSuccessor succeeded (pid %d) with a successor that exits at once", pid)
	}
	if !strings.Contains(err.Error(), "exited before it was ready") {
		t.Errorf("error %q does not say the successor exited before it was ready", err)
	}
}

// A daemon started by a predecessor finds what it passed; one started
// otherwise finds nothing, and a malformed count is an error.
func TestInheritedFromPredecessorReadsTheEnvironment(t *testing.T) {
	t.Setenv(handoffEnv, "")
	os.Unsetenv(handoffEnv)
	if in, err := inheritedFromPredecessor(); in != nil || err != nil {
		t.Errorf("without %s: %v, %v", handoffEnv, in, err)
	}
	for _, v := range []string{"0", "3", "two"} {
		t.Setenv(handoffEnv, v)
		if _, err := inheritedFromPredecessor(); err == nil {
			t.Errorf("%s=%s: no error", handoffEnv, v)
		}
		if _, set := os.LookupEnv(handoffEnv); set {
			t.Errorf("%s=%s is still set for the daemon's own successor", handoffEnv, v)
		}
	}
}
