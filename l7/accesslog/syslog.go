package accesslog

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"
)

// The syslog priority of every entry: facility local7 (23), severity info (6).
const syslogPriority = 23*8 + 6

// syslogTag is the APP-NAME (RFC 5424) or TAG (RFC 3164) of the messages.
const syslogTag = "sluice"

// Reconnection backoff for a syslog server that is down: entries are
// counted as errors until the next attempt.
const (
	dialTimeout  = time.Second
	writeTimeout = 2 * time.Second
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 10 * time.Second
)

// errSyslogDown stands for the entries given up while the syslog server
// cannot be reached and the next attempt is not due.
var errSyslogDown = errors.New("syslog server unreachable; retrying with backoff")

// syslogAddr is a parsed Config.Syslog.
type syslogAddr struct {
	scheme string // udp, tcp, unix (datagram, else stream) or unixgram
	addr   string // host:port or a socket path
}

// parseSyslog parses udp://host[:port], tcp://host[:port] (port 514 by
// default), unix:///path or unixgram:///path.
func parseSyslog(s string) (syslogAddr, error) {
	u, err := url.Parse(s)
	if err != nil {
		return syslogAddr{}, fmt.Errorf("syslog %q: %w", s, err)
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
			return syslogAddr{}, fmt.Errorf("syslog %q: want %s://host:port", s, u.Scheme)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "514"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return syslogAddr{}, fmt.Errorf("syslog %q: bad port %q", s, port)
		}
		return syslogAddr{u.Scheme, net.JoinHostPort(host, port)}, nil
	case "unix", "unixgram":
		if u.Host != "" || u.Path == "" {
			return syslogAddr{}, fmt.Errorf("syslog %q: want %s:///path/to/socket", s, u.Scheme)
		}
		return syslogAddr{u.Scheme, u.Path}, nil
	}
	return syslogAddr{}, fmt.Errorf("syslog %q: want udp://host:port, tcp://host:port, unix:///dev/log or unixgram:///dev/log", s)
}

// syslogSink sends one message per entry. Over the network the message is
// RFC 5424; to a local socket it is the RFC 3164 form local daemons
// (rsyslog, journald) parse: "<190>Nov 24 10:00:00 sluice[pid]: line".
// Stream transports (tcp, unix stream) end each message with "\n".
//
// Nothing here blocks for long: dials and writes have deadlines, and
// while the server is down entries are counted as errors until the next
// attempt, which backs off from 100ms to 10s.
type syslogSink struct {
	to     syslogAddr
	local  bool
	host   string
	pid    string
	c      *counters
	conn   net.Conn
	stream bool
	next   time.Time // no dial before this
	wait   time.Duration
	msg    []byte
}

func newSyslogSink(to syslogAddr, c *counters) *syslogSink {
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	return &syslogSink{to: to, local: to.scheme == "unix" || to.scheme == "unixgram",
		host: host, pid: strconv.Itoa(os.Getpid()), c: c}
}

func (s *syslogSink) entry(f formatter, e *Entry) {
	m := append(s.msg[:0], '<')
	m = strconv.AppendInt(m, syslogPriority, 10)
	m = append(m, '>')
	if s.local {
		m = e.Time.AppendFormat(m, time.Stamp)
		m = append(m, ' ')
		m = append(m, syslogTag...)
		m = append(m, '[')
		m = append(m, s.pid...)
		m = append(m, "]: "...)
	} else {
		m = append(m, '1', ' ')
		m = e.Time.AppendFormat(m, "2006-01-02T15:04:05.000000Z07:00")
		m = append(m, ' ')
		m = append(m, s.host...)
		m = append(m, ' ')
		m = append(m, syslogTag...)
		m = append(m, ' ')
		m = append(m, s.pid...)
		m = append(m, " - - "...)
	}
	m = f.append(m, e)
	s.msg = m
	if err := s.send(); err != nil {
		s.c.fail(1, err)
		return
	}
	s.c.written.Add(1)
}

func (s *syslogSink) send() error {
	if s.conn == nil {
		if time.Now().Before(s.next) {
			return errSyslogDown
		}
		if err := s.dial(); err != nil {
			s.wait = min(max(2*s.wait, backoffMin), backoffMax)
			s.next = time.Now().Add(s.wait)
			return fmt.Errorf("syslog %s: %w", s.to.addr, err)
		}
		s.wait = 0
	}
	if s.stream {
		s.msg = append(s.msg, '\n')
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.conn.Write(s.msg); err != nil {
		if s.to.scheme != "udp" {
			// A stream may be half written, a datagram socket may be
			// gone: start again with a new connection.
			s.conn.Close()
			s.conn = nil
		}
		return fmt.Errorf("syslog %s: %w", s.to.addr, err)
	}
	return nil
}

func (s *syslogSink) dial() error {
	d := net.Dialer{Timeout: dialTimeout}
	if s.to.scheme == "unix" {
		// /dev/log is a datagram socket on most systems, a stream on some.
		c, err := d.Dial("unixgram", s.to.addr)
		if err == nil {
			s.conn, s.stream = c, false
			return nil
		}
		c, err2 := d.Dial("unix", s.to.addr)
		if err2 != nil {
			return err
		}
		s.conn, s.stream = c, true
		return nil
	}
	c, err := d.Dial(s.to.scheme, s.to.addr)
	if err != nil {
		return err
	}
	s.conn, s.stream = c, s.to.scheme == "tcp"
	return nil
}

func (s *syslogSink) flush() {}

func (s *syslogSink) close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

var _ sink = (*syslogSink)(nil)
