package mgmt

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// sdNotify reaches an abstract socket ("@name", as systemd passes it) and
// does nothing without $NOTIFY_SOCKET.
func TestSdNotifyReachesTheServiceManager(t *testing.T) {
	name := fmt.Sprintf("@sluice-notify-test-%d", os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	if err := notifyServing(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if want := fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=serving", os.Getpid()); err != nil || string(buf[:n]) != want {
		t.Errorf("the manager got %q, %v; want %q", buf[:n], err, want)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := notifyServing(); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "/nonexistent/notify")
	if err := notifyServing(); err == nil {
		t.Error("a socket that is not there: no error")
	}
}
