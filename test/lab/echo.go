package lab

import (
	"net/http"
	"strings"
)

// UpgradeEcho answers an Upgrade: websocket request with 101 and then
// echoes each line it reads, upper-cased, until the peer closes: a minimal
// WebSocket-like echo for backends in tests and labs (a proxy only has to
// pass the upgrade and the bytes through). Anything else is a 400.
func UpgradeEcho(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "websocket" {
		http.Error(w, "want an upgrade", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		brw.WriteString(strings.ToUpper(line))
		brw.Flush()
	}
}
