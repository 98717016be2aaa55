package spawn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/wiretrace"
)

// Who may connect to a socket (contract §8):
//
//   - unix:PATH is guarded by the file system and, on Linux, by the peer's
//     uid: the socket is mode 0600 from the moment it can be reached (see
//     listenUnix), and a connection from another uid is closed before
//     anything is read from it or written to it. No cookie is needed, but
//     with a CookieFile the listener writes one and checks rpc.auth
//     against it, so that clients which always authenticate work.
//   - tcp:HOST:PORT binds loopback only and every connection must send
//     rpc.auth with the cookie before anything else is served.
//   - tls:HOST:PORT is tcp with TLS: any HOST, and the cookie as for tcp.
//
// Dial sends rpc.auth first whenever it has a cookie, and refuses to send
// a cookie in the clear to a host that is not loopback.

// SocketOptions says how Listen secures a socket and how Dial proves who
// it is. A nil *SocketOptions is the zero value: unix sockets work as they
// are, tcp: and tls: addresses fail with an error saying what is missing.
type SocketOptions struct {
	// CookieFile is the cookie file. Listen writes a fresh cookie to it
	// (32 random bytes in hex, mode 0600, replaced atomically so that a
	// reader never sees part of one) before it accepts anything, and
	// removes it when the server stops, if it still holds that cookie.
	// tcp: and tls: listeners need one; a unix: listener with one also
	// accepts rpc.auth with that cookie (and closes a connection that sends
	// a wrong one).
	//
	// Dial reads the cookie from it and sends rpc.auth before returning
	// the connection. tcp: and tls: addresses need one; for unix: it is
	// optional, and if it is set the file must be readable.
	CookieFile string

	// TLS configures tls: addresses. Listen needs its Certificates (or
	// GetCertificate). Dial verifies the server against its RootCAs (nil
	// TLS or nil RootCAs: the system's roots) and, as crypto/tls does,
	// checks the server's name against the host of the address unless
	// ServerName is set. A MinVersion of zero is raised to TLS 1.3.
	TLS *tls.Config
}

// The schemes of ParseAddr.
const (
	schemeUnix = "unix"
	schemeTCP  = "tcp"
	schemeTLS  = "tls"
)

// ParseAddr splits an endpoint address, "unix:PATH", "tcp:HOST:PORT" or
// "tls:HOST:PORT", into its scheme ("unix", "tcp" or "tls") and the rest.
func ParseAddr(addr string) (scheme, address string, err error) {
	scheme, address, ok := strings.Cut(addr, ":")
	if !ok || address == "" || (scheme != schemeUnix && scheme != schemeTCP && scheme != schemeTLS) {
		return "", "", fmt.Errorf("bad address %q: want unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", addr)
	}
	if scheme != schemeUnix {
		if _, _, err := net.SplitHostPort(address); err != nil {
			return "", "", fmt.Errorf("bad address %q: want %s:HOST:PORT: %v", addr, scheme, err)
		}
	}
	return scheme, address, nil
}

// handshakeTimeout bounds a TLS handshake: a client that connects and
// says nothing cannot hold a descriptor and a goroutine in it for longer.
const handshakeTimeout = 10 * time.Second

// Dial connects to an endpoint listening on addr (see ParseAddr) and, if
// it has a cookie (sopts.CookieFile), authenticates with rpc.auth before
// returning. tcp: and tls: addresses need the cookie; a tcp: address must
// be loopback, since the cookie would otherwise cross the network in the
// clear. copts configures the connection (nil: defaults with the Default
// callbacks registry). The dialer serves no bootstrap object unless copts
// has one, so it mints ids starting with "c"; the listener's Init is
// conn.Bootstrap().
func Dial(ctx context.Context, addr string, sopts *SocketOptions, copts *bridge.Options) (*bridge.Conn, error) {
	scheme, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var so SocketOptions
	if sopts != nil {
		so = *sopts
	}
	var cookie string
	switch {
	case so.CookieFile != "":
		if cookie, err = readCookie(so.CookieFile); err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
	case scheme != schemeUnix:
		return nil, fmt.Errorf("dial %s: no cookie file: a %s: listener serves only clients that send its cookie", addr, scheme)
	}
	var nc net.Conn
	switch scheme {
	case schemeUnix:
		var d net.Dialer
		nc, err = d.DialContext(ctx, "unix", address)
	case schemeTCP:
		var d net.Dialer
		if nc, err = d.DialContext(ctx, "tcp", address); err == nil {
			if ip := nc.RemoteAddr().(*net.TCPAddr).IP; !ip.IsLoopback() {
				nc.Close()
				return nil, fmt.Errorf("dial %s: %s is not a loopback address: the cookie would cross the network in the clear (use a tls: address)", addr, ip)
			}
		}
	case schemeTLS:
		d := tls.Dialer{Config: tlsConfig(so.TLS)}
		nc, err = d.DialContext(ctx, "tcp", address)
	}
	if err != nil {
		return nil, err
	}
	var o bridge.Options
	if copts != nil {
		o = *copts
	}
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	if o.Name == "" {
		o.Name = addr
	}
	o.Trace = wiretrace.Hook(o.Trace, o.Name)
	conn := bridge.New(nc, nc, &o)
	if cookie != "" {
		var ok bool
		err := conn.Call(ctx, "rpc.auth", map[string]string{"cookie": cookie}, &ok)
		if err == nil && !ok {
			err = errors.New("rpc.auth answered false")
		}
		if err != nil {
			conn.Close()
			if bridge.ErrorCode(err) == bridge.CodeAuth {
				return nil, fmt.Errorf("dial %s: the listener refused the cookie in %s (is it the cookie of the process listening there?): %w", addr, so.CookieFile, err)
			}
			return nil, fmt.Errorf("dial %s: authenticate: %w", addr, err)
		}
	}
	return conn, nil
}

// tlsConfig returns a copy of c (nil: a new one) with MinVersion at least
// set.
func tlsConfig(c *tls.Config) *tls.Config {
	if c == nil {
		c = &tls.Config{}
	} else {
		c = c.Clone()
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS13
	}
	return c
}

// Server serves one bootstrap object to every connection accepted on a
// listener. All connections share the object, and so the process state.
type Server struct {
	ln      net.Listener
	addr    string // in ParseAddr form
	scheme  string
	tls     *tls.Config // tls: only
	init    bridge.Object
	opts    bridge.Options
	log     *slog.Logger
	cleanup []func() // undo what Listen created (socket and cookie files)

	acceptLog, refuseLog rateLimit

	ctx    context.Context // ends when the server stops
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[*bridge.Conn]struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// Listen listens on addr (see ParseAddr) and serves init to each
// connection until Close or Shutdown; copts configures the connections,
// sopts says how they are secured (see SocketOptions; nil is fine for
// unix:). Listen refuses, with an error:
//
//   - unix:PATH where PATH exists and is not a socket, or is a socket that
//     another process serves (a stale socket, one nobody serves, is
//     replaced);
//   - tcp:HOST:PORT with a HOST that is not loopback (an empty HOST and the
//     wildcards 0.0.0.0 and :: mean 127.0.0.1; use tls: for other hosts;
//     a tls: listener binds HOST as given, except that an empty HOST
//     means 127.0.0.1 there too);
//   - tcp: and tls: without sopts.CookieFile, and tls: without a
//     certificate.
//
// The socket file of a unix: listener is mode 0600 whatever the umask, and
// on Linux a connection from another uid is closed unserved (and logged,
// at most once a second). A failing Accept, such as when the process is out
// of file descriptors, is retried with a back-off of up to a second.
func Listen(addr string, init bridge.Object, sopts *SocketOptions, copts *bridge.Options) (*Server, error) {
	scheme, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var so SocketOptions
	if sopts != nil {
		so = *sopts
	}
	s := &Server{scheme: scheme, init: init, conns: map[*bridge.Conn]struct{}{}}
	s.opts = *serveOptions(init, copts, "")
	// The one Init is shared: a connection that ends must not close it.
	s.opts.Bootstrap = bridge.Lend(init)
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if scheme != schemeUnix && so.CookieFile == "" {
		return nil, fmt.Errorf("listen %s: a %s: listener needs a cookie file, to which it writes the cookie its clients must send", addr, scheme)
	}
	if scheme == schemeTLS {
		if so.TLS == nil || (len(so.TLS.Certificates) == 0 && so.TLS.GetCertificate == nil && so.TLS.GetConfigForClient == nil) {
			return nil, fmt.Errorf("listen %s: a tls: listener needs a certificate and its key", addr)
		}
		s.tls = tlsConfig(so.TLS)
	}
	cookie := ""
	if so.CookieFile != "" {
		if cookie, err = newCookie(); err != nil {
			return nil, err
		}
	}
	switch scheme {
	case schemeUnix:
		ln, remove, err := listenUnix(address)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		s.ln, s.cleanup = ln, append(s.cleanup, remove)
		// Bound under a temporary name: its address is the path given.
		s.addr = addr
	default:
		host, err := bindHost(scheme, address)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		_, port, _ := net.SplitHostPort(address)
		if s.ln, err = net.Listen("tcp", net.JoinHostPort(host, port)); err != nil {
			return nil, err
		}
		s.addr = scheme + ":" + s.ln.Addr().String()
	}
	if cookie != "" {
		// Written once we hold the address, so that a listener that
		// cannot start never overwrites the cookie of one that runs.
		if err := writeCookie(so.CookieFile, cookie); err != nil {
			s.ln.Close()
			s.runCleanup()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		s.cleanup = append(s.cleanup, func() { removeCookie(so.CookieFile, cookie) })
		s.opts.Cookie = cookie
		s.opts.RequireAuth = scheme != schemeUnix
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// bindHost returns the host a tcp: or tls: listener binds: loopback for an
// empty or wildcard tcp: host; a non-loopback tcp: host is an error.
func bindHost(scheme, address string) (string, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "", err
	}
	if host == "" || (scheme == schemeTCP && (host == "0.0.0.0" || host == "::")) {
		return "127.0.0.1", nil
	}
	if scheme == schemeTLS {
		return host, nil
	}
	ips := []net.IP{net.ParseIP(host)}
	if ips[0] == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ips, err = net.DefaultResolver.LookupIP(ctx, "ip", host); err != nil {
			return "", err
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return "", fmt.Errorf("%s is not a loopback address: a plain tcp: listener accepts only this host's connections; use tls: (with a certificate) to listen on %s", ip, host)
		}
	}
	return ips[0].String(), nil
}

// Addr returns the listener's address in ParseAddr form, such as
// "tcp:127.0.0.1:41234" after Listen("tcp::0", ...).
func (s *Server) Addr() string { return s.addr }

// acceptRetryMax is the longest pause between failing Accepts.
const acceptRetryMax = time.Second

func (s *Server) accept() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// As net/http's Server does on temporary errors, but for
			// every error: a listener that stops for good because the
			// process ran out of descriptors for a moment (EMFILE) never
			// serves again. The pending connections wait in the backlog.
			delay = min(max(2*delay, 5*time.Millisecond), acceptRetryMax)
			s.acceptLog.do(func(n int) {
				s.log.Warn("accept failed; retrying", "addr", s.addr, "err", err, "retry", delay, "failures", n)
			})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		s.wg.Add(1)
		go s.serveConn(nc)
	}
}

// serveConn checks who connected and serves them until the connection
// ends.
func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	name := "client " + nc.RemoteAddr().String()
	switch s.scheme {
	case schemeUnix:
		name = "client on " + s.addr
		if refusal := checkPeer(nc); refusal != "" {
			nc.Close()
			s.refuseLog.do(func(n int) {
				s.log.Warn("refused a connection: "+refusal, "addr", s.addr, "refused", n)
			})
			return
		}
	case schemeTLS:
		tc := tls.Server(nc, s.tls)
		ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			tc.Close()
			s.refuseLog.do(func(n int) {
				s.log.Warn("TLS handshake failed", "addr", s.addr, "peer", nc.RemoteAddr().String(), "err", err, "failures", n)
			})
			return
		}
		nc = tc
	}
	o := s.opts
	if o.Name == "" {
		o.Name = name
	}
	o.Trace = wiretrace.Hook(o.Trace, o.Name)
	c := bridge.New(nc, nc, &o)
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	<-c.Done()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Conns reports the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting and shuts every connection down in order (see
// bridge.Conn.Shutdown), then waits for them. It removes the socket file
// and the cookie file the server created.
func (s *Server) Shutdown() error {
	return s.stop(func(c *bridge.Conn) { _ = c.Shutdown() })
}

// Close stops accepting and closes every connection at once. It removes
// the socket file and the cookie file the server created.
func (s *Server) Close() error {
	return s.stop(func(c *bridge.Conn) { _ = c.Close() })
}

func (s *Server) stop(end func(*bridge.Conn)) error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.cancel()
		conns := make([]*bridge.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		err = s.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		// Remove the files first: a client that reads the cookie now
		// finds none rather than one that no longer opens anything.
		s.runCleanup()
		var wg sync.WaitGroup
		for _, c := range conns {
			wg.Add(1)
			go func() { defer wg.Done(); end(c) }()
		}
		wg.Wait()
	})
	s.wg.Wait()
	return err
}

func (s *Server) runCleanup() {
	for _, f := range s.cleanup {
		f()
	}
}

// rateLimit lets an action run at most once a second and counts the
// events in between, so that a peer cannot flood the log.
type rateLimit struct {
	mu    sync.Mutex
	next  time.Time
	count int
}

// do counts an event and calls f with the count of events since the last
// call of f, unless f ran less than a second ago.
func (r *rateLimit) do(f func(n int)) {
	r.mu.Lock()
	r.count++
	now := time.Now()
	if now.Before(r.next) {
		r.mu.Unlock()
		return
	}
	n := r.count
	r.count = 0
	r.next = now.Add(time.Second)
	r.mu.Unlock()
	f(n)
}
