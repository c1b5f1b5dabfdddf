package mgmt

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify sends state to the service manager (systemd's sd_notify
// protocol: a datagram to the unix socket $NOTIFY_SOCKET, "@" naming an
// abstract one). Without $NOTIFY_SOCKET, as outside a Type=notify unit,
// it does nothing. A failure is only logged: the manager is told, it does
// not drive the daemon.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	return nil
}

// notifyServing tells the service manager this process serves and is the
// service's main process: after an upgrade in place the successor is, and
// a unit with NotifyAccess=all follows it (see scripts/sluice.service).
func notifyServing() error {
	return sdNotify(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=serving", os.Getpid()))
}
