package spawn

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testcert"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

type closeCounter struct {
	testsvc.Init
	closed chan struct{}
}

func (c closeCounter) Close() error { close(c.closed); return nil }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testTLS makes a CA and a server certificate for 127.0.0.1 and returns
// the server's and a client's configuration.
func testTLS(t *testing.T, ips ...net.IP) (server, client *tls.Config) {
	t.Helper()
	f, err := testcert.New(t.TempDir(), ips...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: pool}
}

func TestListenDial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	stls, ctls := testTLS(t)
	for _, c := range []struct {
		addr   string
		listen *SocketOptions
		dial   *SocketOptions
	}{
		{"unix:" + filepath.Join(dir, "node.sock"), nil, nil},
		{"tcp:127.0.0.1:0", &SocketOptions{CookieFile: filepath.Join(dir, "tcp.cookie")}, &SocketOptions{CookieFile: filepath.Join(dir, "tcp.cookie")}},
		{"tls:127.0.0.1:0", &SocketOptions{CookieFile: filepath.Join(dir, "tls.cookie"), TLS: stls}, &SocketOptions{CookieFile: filepath.Join(dir, "tls.cookie"), TLS: ctls}},
	} {
		svc := closeCounter{&testsvc.Service{}, make(chan struct{})}
		srv, err := Listen(c.addr, callbacks.Export[testsvc.Init](svc), c.listen, &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		a, err := Dial(ctx, srv.Addr(), c.dial, &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Dial(ctx, srv.Addr(), c.dial, &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ia, _ := callbacks.Import[testsvc.Init](a.Bootstrap())
		ib, _ := callbacks.Import[testsvc.Init](b.Bootstrap())
		ca, err := ia.Shared(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ca.Add(ctx, 7)
		// The two connections share the process state.
		cb, _ := ib.Shared(ctx)
		if v, err := cb.Value(ctx); err != nil || v != 7 {
			t.Fatalf("%s: shared state through the second connection: %d %v", c.addr, v, err)
		}
		// A client that detaches leaves the server and the others running.
		a.Close()
		if s, err := ib.Ping(ctx); err != nil || s != "pong" {
			t.Fatalf("%s: after detach: %q %v", c.addr, s, err)
		}
		select {
		case <-svc.closed:
			t.Fatalf("%s: a detaching client closed the shared Init", c.addr)
		default:
		}
		// Shutdown ends the remaining connection in order.
		if err := srv.Shutdown(); err != nil {
			t.Fatal(err)
		}
		<-b.Done()
		if _, err := ib.Ping(ctx); bridge.ErrorCode(err) != bridge.CodeDisconnected {
			t.Fatalf("%s: after shutdown: %v", c.addr, err)
		}
		b.Close()
		// It removed what it created.
		_, path, _ := ParseAddr(c.addr)
		if c.listen != nil {
			path = c.listen.CookieFile
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Errorf("%s: %s left after Shutdown: %v", c.addr, path, err)
		}
	}
	if _, err := Listen("udp:1", nil, nil, nil); err == nil {
		t.Fatal("bad address accepted")
	}
}

// TestSocketsNeedCookies: a tcp: or tls: listener and dialer without a
// cookie file fail, saying so; a tls: listener without a certificate too.
func TestSocketsNeedCookies(t *testing.T) {
	init := callbacks.Export[testsvc.Init](&testsvc.Service{})
	for _, addr := range []string{"tcp:127.0.0.1:0", "tls:127.0.0.1:0"} {
		if srv, err := Listen(addr, init, nil, nil); err == nil || !strings.Contains(err.Error(), "needs a cookie file") {
			if srv != nil {
				srv.Close()
			}
			t.Errorf("Listen(%s) without a cookie file: %v", addr, err)
		}
		if _, err := Dial(context.Background(), addr, nil, nil); err == nil || !strings.Contains(err.Error(), "no cookie file") {
			t.Errorf("Dial(%s) without a cookie file: %v", addr, err)
		}
	}
	if srv, err := Listen("tls:127.0.0.1:0", init, &SocketOptions{CookieFile: filepath.Join(t.TempDir(), "c")}, nil); err == nil || !strings.Contains(err.Error(), "needs a certificate") {
		if srv != nil {
			srv.Close()
		}
		t.Errorf("tls: without a certificate: %v", err)
	}
	// A cookie file that is not there is an error naming it.
	missing := filepath.Join(t.TempDir(), "nothing")
	if _, err := Dial(context.Background(), "unix:/nonexistent.sock", &SocketOptions{CookieFile: missing}, nil); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Dial with a missing cookie file: %v", err)
	}
}

// nonLoopbackIP returns an address of this host that is not loopback, or
// skips.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	t.Skip("this host has no IPv4 address but loopback")
	return nil
}

// TestTCPLoopbackOnly: a wildcard or empty tcp: host binds 127.0.0.1; a
// host that is not loopback is refused, pointing at tls:; a tls: listener
// may bind it.
func TestTCPLoopbackOnly(t *testing.T) {
	init := callbacks.Export[testsvc.Init](&testsvc.Service{})
	so := &SocketOptions{CookieFile: filepath.Join(t.TempDir(), "cookie")}
	for _, addr := range []string{"tcp::0", "tcp:0.0.0.0:0", "tcp:[::]:0", "tcp:localhost:0"} {
		srv, err := Listen(addr, init, so, &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		if !strings.HasPrefix(srv.Addr(), "tcp:127.0.0.1:") {
			t.Errorf("Listen(%s) bound %s, want 127.0.0.1", addr, srv.Addr())
		}
		srv.Close()
	}
	ip := nonLoopbackIP(t)
	addr := "tcp:" + net.JoinHostPort(ip.String(), "0")
	if srv, err := Listen(addr, init, so, nil); err == nil || !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "use tls:") {
		if srv != nil {
			srv.Close()
		}
		t.Errorf("Listen(%s) = %v, want a refusal pointing at tls:", addr, err)
	}
	stls, ctls := testTLS(t, ip)
	srv, err := Listen("tls:"+net.JoinHostPort(ip.String(), "0"), init, &SocketOptions{CookieFile: so.CookieFile, TLS: stls}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := Dial(context.Background(), srv.Addr(), &SocketOptions{CookieFile: so.CookieFile, TLS: ctls}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var s string
	if err := conn.Bootstrap().Call(context.Background(), "Init.ping", nil, &s); err != nil || s != "pong" {
		t.Errorf("ping over tls on %s: %q %v", ip, s, err)
	}
}

// TestDialKeepsCookieOffTheNetwork: Dial refuses to send the cookie in the
// clear to a tcp: host that is not loopback; the listener receives
// nothing.
func TestDialKeepsCookieOffTheNetwork(t *testing.T) {
	ip := nonLoopbackIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	cookie := filepath.Join(t.TempDir(), "cookie")
	if err := writeCookie(cookie, "s3cret"); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), "tcp:"+ln.Addr().String(), &SocketOptions{CookieFile: cookie}, nil)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("Dial to %s: %v, want a refusal", ln.Addr(), err)
	}
	if b := <-got; len(b) != 0 {
		t.Errorf("the listener received %q", b)
	}
}

// TestCookieFile: the cookie file is 0600, 64 hex digits, whatever the
// umask; Shutdown removes it unless another listener has replaced it.
func TestCookieFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".cookie")
	init := callbacks.Export[testsvc.Init](&testsvc.Service{})
	srv, err := Listen("tcp:127.0.0.1:0", init, &SocketOptions{CookieFile: path}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if fi.Mode() != 0o600 || !regexp.MustCompile(`^[0-9a-f]{64}$`).Match(b) {
		t.Errorf("cookie file %v %q, want -rw------- and 64 hex digits", fi.Mode(), b)
	}
	// A second listener with the same file replaces the cookie; the first
	// one's Shutdown leaves the second one's cookie alone.
	srv2, err := Listen("tcp:127.0.0.1:0", init, &SocketOptions{CookieFile: path}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(path)
	if string(b2) == string(b) {
		t.Error("the second listener wrote the same cookie")
	}
	srv.Shutdown()
	if b3, _ := os.ReadFile(path); string(b3) != string(b2) {
		t.Errorf("the first listener's Shutdown removed or changed the second's cookie: %q", b3)
	}
	srv2.Shutdown()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("cookie file after Shutdown: %v", err)
	}
	// A listener that cannot start leaves the cookie of the one running.
	srv3, err := Listen("unix:"+filepath.Join(t.TempDir(), "s"), init, &SocketOptions{CookieFile: path}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv3.Close()
	before, _ := os.ReadFile(path)
	_, sock, _ := ParseAddr(srv3.Addr())
	if _, err := Listen("unix:"+sock, init, &SocketOptions{CookieFile: path}, nil); err == nil {
		t.Fatal("a second listener on a live socket started")
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a listener that could not start replaced the running one's cookie")
	}
}

// TestWrongCookie: Dial with a wrong cookie fails with -32004, and the
// server closes that connection.
func TestWrongCookie(t *testing.T) {
	dir := t.TempDir()
	srv, err := Listen("tcp:127.0.0.1:0", callbacks.Export[testsvc.Init](&testsvc.Service{}), &SocketOptions{CookieFile: filepath.Join(dir, "c")}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	wrong := filepath.Join(dir, "wrong")
	if err := writeCookie(wrong, strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), srv.Addr(), &SocketOptions{CookieFile: wrong}, &bridge.Options{Logger: quiet})
	if bridge.ErrorCode(err) != bridge.CodeAuth || !strings.Contains(err.Error(), wrong) {
		t.Errorf("Dial with a wrong cookie: %v, want -32004 naming %s", err, wrong)
	}
	// Raw: the refusal, then end of stream.
	_, address, _ := ParseAddr(srv.Addr())
	nc, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(nc, `{"jsonrpc":"2.0","id":1,"method":"rpc.auth","params":{"cookie":"guess"}}`+"\n"+`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`+"\n")
	out, err := io.ReadAll(nc)
	if err != nil || !strings.Contains(string(out), `"code":-32004`) || strings.Count(string(out), "\n") != 1 {
		t.Errorf("after a wrong cookie: %q %v, want one -32004 answer and end of stream", out, err)
	}
}

// TestUnixSocketPath: a regular file, a directory or a symbolic link at
// the path is refused and left as it was; a socket another listener serves
// is refused; a stale socket is replaced; the socket is 0600 and removed
// on Close.
func TestUnixSocketPath(t *testing.T) {
	dir := t.TempDir()
	init := callbacks.Export[testsvc.Init](&testsvc.Service{})
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("precious"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, p := range []string{file, dir, link} {
		if srv, err := Listen("unix:"+p, init, nil, nil); err == nil || !strings.Contains(err.Error(), p+" exists and is not a socket") {
			if srv != nil {
				srv.Close()
			}
			t.Errorf("Listen on %s: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "precious" {
		t.Errorf("the file was changed: %q", b)
	}
	if target, _ := os.Readlink(link); target != file {
		t.Errorf("the link was changed: %q", target)
	}

	sock := filepath.Join(dir, "node.sock")
	srv, err := Listen("unix:"+sock, init, nil, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode() != os.ModeSocket|0o600 {
		t.Errorf("socket %v %v, want srw-------", fi.Mode(), err)
	}
	if srv2, err := Listen("unix:"+sock, init, nil, nil); err == nil || !strings.Contains(err.Error(), sock+" is in use") {
		if srv2 != nil {
			srv2.Close()
		}
		t.Errorf("Listen on a live socket: %v", err)
	}
	// Nothing is left over from creating it.
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Errorf("directory holds %v", ents)
	}
	srv.Close()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after Close: %v", err)
	}

	// A stale socket: bound, then its listener closed without removing it.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	srv, err = Listen("unix:"+sock, init, nil, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	defer srv.Close()
	conn, err := Dial(context.Background(), srv.Addr(), nil, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var s string
	if err := conn.Bootstrap().Call(context.Background(), "Init.ping", nil, &s); err != nil || s != "pong" {
		t.Errorf("ping on the replaced socket: %q %v", s, err)
	}
}

// TestUnixCookie: a unix: listener with a cookie file accepts clients
// without one, accepts rpc.auth with the cookie, and closes a connection
// that sends a wrong one.
func TestUnixCookie(t *testing.T) {
	dir := t.TempDir()
	cookie := filepath.Join(dir, ".cookie")
	srv, err := Listen("unix:"+filepath.Join(dir, "s"), callbacks.Export[testsvc.Init](&testsvc.Service{}), &SocketOptions{CookieFile: cookie}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	for _, so := range []*SocketOptions{nil, {CookieFile: cookie}} {
		conn, err := Dial(ctx, srv.Addr(), so, &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := conn.Bootstrap().Call(ctx, "Init.ping", nil, &s); err != nil || s != "pong" {
			t.Errorf("ping with %+v: %q %v", so, s, err)
		}
		conn.Close()
	}
	_, path, _ := ParseAddr(srv.Addr())
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(nc, `{"jsonrpc":"2.0","id":1,"method":"rpc.auth","params":{"cookie":"guess"}}`+"\n")
	line, _ := bufio.NewReader(nc).ReadString('\n')
	if !strings.Contains(line, `"code":-32004`) {
		t.Errorf("wrong cookie on unix: %q", line)
	}
}

// TestRateLimit: however many events come, the action runs at most once
// a second (and once at the start), and is told how many it stands for.
// In a synctest bubble: the clock moves only when the test sleeps, so the
// counts are exact: one call for the first burst, none for a burst just
// under a second later, one at the first event a second after the first
// call, standing for every event since.
func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var r rateLimit
		calls, total := 0, 0
		burst := func() {
			for range 10000 {
				r.do(func(n int) { calls++; total += n })
			}
		}
		check := func(what string, wantCalls, wantTotal int) {
			t.Helper()
			if calls != wantCalls || total != wantTotal {
				t.Errorf("%s: %d calls for %d events; want %d calls for %d", what, calls, total, wantCalls, wantTotal)
			}
		}
		burst()
		check("first burst", 1, 1)
		time.Sleep(time.Second - time.Nanosecond)
		burst()
		check("a burst within the second", 1, 1)
		time.Sleep(time.Nanosecond)
		burst()
		check("a burst a second after the first call", 2, 1+9999+10000+1)
		if total+r.count != 30000 {
			t.Errorf("counted %d + %d pending, want 30000", total, r.count)
		}
	})
}

// TestSocketDoc replays the socket-transcript blocks of docs/PROTOCOL.md
// against a tcp: listener, each on a new connection, with COOKIE replaced
// by its cookie; "<- end of stream" requires the listener to close.
func TestSocketDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```socket-transcript\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d socket transcripts", len(blocks))
	}
	cookieFile := filepath.Join(t.TempDir(), "cookie")
	srv, err := Listen("tcp:127.0.0.1:0", callbacks.Export[testsvc.Init](&testsvc.Service{}), &SocketOptions{CookieFile: cookieFile}, &bridge.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cookie, err := readCookie(cookieFile)
	if err != nil {
		t.Fatal(err)
	}
	_, address, _ := ParseAddr(srv.Addr())
	for i, b := range blocks {
		nc, err := net.Dial("tcp", address)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(nc)
		for _, line := range strings.Split(strings.TrimSpace(b[1]), "\n") {
			dir, text, _ := strings.Cut(line, " ")
			text = strings.ReplaceAll(text, "COOKIE", cookie)
			switch {
			case dir == "->":
				io.WriteString(nc, text+"\n")
			case line == "<- end of stream":
				if rest, err := io.ReadAll(r); err != nil || len(rest) > 0 {
					t.Errorf("transcript %d: %q %v, want end of stream", i+1, rest, err)
				}
			case dir == "<-":
				got, err := r.ReadString('\n')
				if strings.TrimSuffix(got, "\n") != text {
					t.Errorf("transcript %d:\n got: %s (%v)\nwant: %s", i+1, got, err, text)
				}
			default:
				t.Fatalf("transcript %d: bad line %q", i+1, line)
			}
		}
		nc.Close()
	}
}
