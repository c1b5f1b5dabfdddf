package l7

// The HTTP/1.1 loop's answers: the upstream's head and body relayed to the
// client by their framing, and the proxy's own error answers.

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// writeResponseHead writes the upstream's head to the client: status,
// headers but the hop-by-hop ones and those Connection names, then the
// framing this proxy relays.
func (h *h1conn) writeResponseHead(keep bool) {
	r, bw := &h.resp, h.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(r.status))
	bw.WriteByte(' ')
	bw.WriteString(r.reason)
	bw.WriteString("\r\n")
	for _, f := range r.headers {
		if len(r.named) > 0 && containsFold(r.named, f.name) {
			continue
		}
		if r.chunked && equalFold(f.name, "content-length") {
			continue
		}
		bw.WriteString(f.name)
		bw.WriteString(": ")
		bw.WriteString(f.value)
		bw.WriteString("\r\n")
	}
	if r.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// relayBody copies the answer's body to the client as the upstream sends
// it: what has arrived is flushed to the client before waiting for more, so
// streamed answers (server-sent events, long polls) flow as they come. It
// returns the body bytes relayed (chunk data, not framing).
func (h *h1conn) relayBody(pc *pooledConn, readTimeout time.Duration) (int64, error) {
	r := &h.resp
	switch {
	case h.req.method == "HEAD" || r.noBody:
		return 0, nil
	case r.chunked:
		return h.relayChunked(pc, readTimeout)
	case r.length >= 0:
		return h.relayN(pc, r.length, readTimeout)
	default:
		n, err := h.relayN(pc, -1, readTimeout)
		if errors.Is(err, errUpstreamEOF) {
			err = nil
		}
		return n, err
	}
}

var errUpstreamEOF = errors.New("upstream closed the connection")

// relayN copies n body bytes (n < 0: until the upstream closes, which then
// returns errUpstreamEOF) from the upstream to the client.
func (h *h1conn) relayN(pc *pooledConn, n int64, readTimeout time.Duration) (int64, error) {
	var done int64
	for n < 0 || done < n {
		if pc.br.Buffered() == 0 {
			if h.bw.Flush() != nil {
				return done, errClientWrite
			}
			h.bodyWaited = true
			if err := h.awaitUpstream(pc, 1, time.Now().Add(readTimeout)); err != nil {
				if errors.Is(err, io.EOF) {
					return done, errUpstreamEOF
				}
				return done, err
			}
		}
		k := pc.br.Buffered()
		if n >= 0 && int64(k) > n-done {
			k = int(n - done)
		}
		b, _ := pc.br.Peek(k)
		w, err := h.bw.Write(b)
		_, _ = pc.br.Discard(w)
		done += int64(w)
		if err != nil {
			return done, errClientWrite
		}
	}
	return done, nil
}

// relayChunked relays a chunked body, chunk lines, data and trailers as
// they are, parsing the sizes to know where it ends. Lines reach the client
// ending in CRLF however the upstream ended them (a bare LF is accepted, as
// in heads).
func (h *h1conn) relayChunked(pc *pooledConn, readTimeout time.Duration) (int64, error) {
	var data int64
	for {
		line, n, err := h.upstreamLine(pc, readTimeout)
		if err != nil {
			return data, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return data, errBadUpstream
		}
		if !h.writeLine(line) {
			return data, errClientWrite
		}
		_, _ = pc.br.Discard(n)
		if size == 0 {
			for { // trailers, up to the empty line
				line, n, err := h.upstreamLine(pc, readTimeout)
				if err != nil {
					return data, err
				}
				ok := h.writeLine(line)
				_, _ = pc.br.Discard(n)
				if !ok {
					return data, errClientWrite
				}
				if len(line) == 0 {
					return data, nil
				}
			}
		}
		m, err := h.relayN(pc, size, readTimeout)
		data += m
		if err != nil {
			return data, err
		}
		// The data's line end, and nothing before it.
		if line, n, err = h.upstreamLine(pc, readTimeout); err != nil {
			return data, err
		}
		if len(line) != 0 {
			return data, errBadUpstream
		}
		_, _ = pc.br.Discard(n)
		if !h.writeLine(nil) {
			return data, errClientWrite
		}
	}
}

// writeLine writes line and a CRLF to the client.
func (h *h1conn) writeLine(line []byte) bool {
	_, _ = h.bw.Write(line)
	_, err := h.bw.WriteString("\r\n")
	return err == nil
}

// upstreamLine returns the next line in pc's buffer without its end (CRLF,
// or a bare LF) and the length to consume with the end, without consuming
// it.
func (h *h1conn) upstreamLine(pc *pooledConn, readTimeout time.Duration) ([]byte, int, error) {
	for {
		buf, _ := pc.br.Peek(pc.br.Buffered())
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			return bytes.TrimSuffix(buf[:i], []byte("\r")), i + 1, nil
		}
		if len(buf) >= maxChunkLine {
			return nil, 0, errBadUpstream
		}
		if h.bw.Flush() != nil {
			return nil, 0, errClientWrite
		}
		h.bodyWaited = true
		if err := h.awaitUpstream(pc, len(buf)+1, time.Now().Add(readTimeout)); err != nil {
			return nil, 0, err
		}
	}
}

// writeError answers with status and a short text, as http.Error does, and
// returns the body length.
func (h *h1conn) writeError(status int, text string, closing bool) int64 {
	bw := h.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(status))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(text) + 1))
	if closing {
		bw.WriteString("\r\nConnection: close")
	}
	bw.WriteString("\r\n\r\n")
	bw.WriteString(text)
	bw.WriteByte('\n')
	return int64(len(text) + 1)
}
