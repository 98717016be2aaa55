package main

// Who may connect to a listening mpnode (contract §8, issue 10), and a
// listener that survives running out of descriptors (§9), tried with the
// real binaries, real sockets and real files.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpbridge/mpbridge/internal/testcert"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/spawn"
	"github.com/mpbridge/mpbridge/wallet"
)

// probeEnv makes the test binary a probe (see probe) instead of running
// tests, so that it can connect as another user.
const probeEnv = "MPGUI_TEST_PROBE"

// probeResult is what a probe reports on stdout.
type probeResult struct {
	DialErr string // why it could not connect, if it could not
	Got     string // the first line the server sent, or all it sent before closing
}

// probe connects to the unix socket path, asks for Init.makeNode, reads
// the answer or, if the server closes first, what came before the end of
// the stream, and reports what happened.
func probe(path string) int {
	var r probeResult
	nc, err := net.Dial("unix", path)
	if err != nil {
		r.DialErr = err.Error()
	} else {
		nc.SetDeadline(time.Now().Add(60 * time.Second))
		io.WriteString(nc, `{"jsonrpc":"2.0","id":1,"method":"Init.makeNode"}`+"\n")
		b, _ := bufio.NewReader(nc).ReadString('\n')
		r.Got = b
		nc.Close()
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// runProbe runs a probe against path as uid (and gid) uid, from a copy of
// the test binary that uid may execute.
func runProbe(t *testing.T, exe, path string, uid uint32) probeResult {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), probeEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out, errOut, code := runCmd(t, "", cmd)
	var r probeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("probe as uid %d: exit %d, %q %q", uid, code, out, errOut)
	}
	return r
}

// publicDir returns a new directory that every user may enter, with a
// copy of the test binary in it.
func publicDir(t *testing.T) (dir, exe string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe = filepath.Join(dir, "probe")
	if err := os.WriteFile(exe, self, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, exe
}

const nobody = 65534

// TestUnixSocketOwnerOnly (issue 10 item 2, the socket): under umask 000
// the node's socket is still srw-------, so another uid cannot connect;
// and if an operator opens the mode up, a connection from another uid is
// closed unserved (SO_PEERCRED) and logged.
func TestUnixSocketOwnerOnly(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to connect as another user")
	}
	dir, exe := publicDir(t)
	sock := filepath.Join(dir, "node.sock")
	cmd := exec.Command("sh", "-c", `umask 000; exec "$0" "$@"`, filepath.Join(binDir, "mpnode"), "-listen=unix:"+sock, "-wallet=none")
	nodeProc := startCmd(t, "mpnode", cmd)
	nodeProc.waitLine(`listening on`)
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != os.ModeSocket|0o600 {
		t.Fatalf("socket under umask 000 is %v, want Srw-------", fi.Mode())
	}
	if r := runProbe(t, exe, sock, nobody); !strings.Contains(r.DialErr, "permission denied") || r.Got != "" {
		t.Errorf("uid %d on a 0600 socket: %+v, want permission denied", nobody, r)
	}
	// The same uid is served.
	if r := runProbe(t, exe, sock, uint32(os.Getuid())); !strings.Contains(r.Got, `"result":{"$handle":`) {
		t.Fatalf("own uid: %+v, want a Node handle", r)
	}
	// Opened up by mistake: the peer's uid still keeps it out.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	if r := runProbe(t, exe, sock, nobody); r.DialErr != "" || r.Got != "" {
		t.Errorf("uid %d on a 0666 socket: %+v, want a connection closed with nothing sent", nobody, r)
	}
	nodeProc.waitLine(fmt.Sprintf(`refused a connection: peer uid %d \(pid \d+\) is not this process's uid 0`, nobody))
}

// TestUnixSocketPathRefused (issue 10 item 3): -listen=unix:PATH on a
// regular file exits 1 naming PATH and leaves the file; on a socket a live
// node serves it exits 1 and the live node goes on; a stale socket is
// replaced.
func TestUnixSocketPathRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "precious")
	if err := writeString(file, "keep me"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runBin(t, "", "mpnode", "-listen=unix:"+file, "-wallet=none")
	if code != 1 || !strings.Contains(errOut, file+" exists and is not a socket") {
		t.Errorf("mpnode on a regular file: exit %d, %q", code, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the file after: %q %v", b, err)
	}

	sock := filepath.Join(dir, "node.sock")
	live := start(t, "mpnode", "-listen=unix:"+sock, "-wallet=none")
	live.waitLine(`listening on`)
	_, errOut, code = runBin(t, "", "mpnode", "-listen=unix:"+sock, "-wallet=none")
	if code != 1 || !strings.Contains(errOut, sock+" is in use") {
		t.Errorf("mpnode on a live socket: exit %d, %q", code, errOut)
	}
	if out, errOut, code := gui(t, "", "-connect=unix:"+sock, "getblockcount"); code != 0 || strings.TrimSpace(out) != "0" {
		t.Errorf("the live node after: %d %q %q", code, out, errOut)
	}
	// Killed, it leaves its socket behind: stale.
	live.kill9()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket left: %v %v", fi, err)
	}
	next := start(t, "mpnode", "-listen=unix:"+sock, "-wallet=none")
	next.waitLine(`listening on`)
	if out, errOut, code := gui(t, "", "-connect=unix:"+sock, "getblockcount"); code != 0 || strings.TrimSpace(out) != "0" {
		t.Errorf("the node on the replaced socket: %d %q %q", code, out, errOut)
	}
}

// rawClient speaks JSON-RPC lines on a socket, as a client in any
// language would.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
	id int
}

func rawDial(t *testing.T, network, address string) *rawClient {
	t.Helper()
	nc, err := net.Dial(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// call sends a request and returns the next message read.
func (c *rawClient) call(method string, params any) map[string]any {
	c.t.Helper()
	c.id++
	req := map[string]any{"jsonrpc": "2.0", "id": c.id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	if _, err := c.nc.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("%s: no answer: %v", method, err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("%s: %q", method, line)
	}
	return m
}

func errCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

// TestTCPNeedsCookie (issue 10 item 1): a node on tcp with -wallet=inproc
// serves a client without its cookie nothing: every method, the wallet
// loader's and attachWalletLoader among them, is answered -32004 and not
// run, so it can neither list, read nor take the wallets, nor put its own
// loader in their place. A wrong cookie is answered -32004 and the
// connection closed; the right one works. The wildcard host binds
// 127.0.0.1 only; the cookie file is 0600, 64 hex digits, and gone after
// SIGTERM.
func TestTCPNeedsCookie(t *testing.T) {
	ctx := context.Background()
	cookie := filepath.Join(t.TempDir(), "node.cookie")
	nodeProc := start(t, "mpnode", "-listen=tcp::0", "-wallet=inproc", "-cookiefile="+cookie)
	m := nodeProc.waitLine(`listening on (tcp:127\.0\.0\.1:(\d+))$`)
	addr, port := m[1], m[2]
	fi, err := os.Stat(cookie)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(cookie); fi.Mode() != 0o600 || !regexp.MustCompile(`^[0-9a-f]{64}$`).Match(b) {
		t.Errorf("cookie file %v %q, want -rw------- and 64 hex digits", fi.Mode(), b)
	}
	if ip := localIP(); ip != nil {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), port), 10*time.Second); err == nil {
			c.Close()
			t.Errorf("tcp::0 is reachable on %s", ip)
		}
	}

	// The owner, with the cookie, makes a wallet with coins.
	_, owner := dialWith(t, addr, &spawn.SocketOptions{CookieFile: cookie})
	loader := must[wallet.WalletLoader](t)(owner.MakeWalletLoader(ctx))
	alice := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "alice"))
	aliceAddr := must[string](t)(alice.GetNewAddress(ctx))
	nodeH := must[node.Node](t)(owner.MakeNode(ctx))
	must[[]string](t)(nodeH.GenerateToAddress(ctx, 1, aliceAddr))

	// A client without it.
	_, hostport, _ := strings.Cut(addr, ":")
	thief := rawDial(t, "tcp", hostport)
	for _, c := range []struct {
		method string
		params any
	}{
		{"Init.makeNode", nil},
		{"Init.makeChain", nil},
		{"Init.makeWalletLoader", nil},
		{"Init.attachWalletLoader", map[string]any{"loader": map[string]any{"$handle": "c1"}}},
		{"WalletLoader.listWallets", map[string]any{"$self": "s1.0000000000000000"}},
		{"WalletLoader.getWallet", map[string]any{"$self": "s1.0000000000000000", "name": "alice"}},
		{"Wallet.sendToAddress", map[string]any{"$self": "s1.0000000000000000", "address": strings.Repeat("a", 40), "amount": 1}},
		{"rpc.discover", nil},
		{"rpc.handles", nil},
	} {
		if r := thief.call(c.method, c.params); errCode(r) != -32004 {
			t.Errorf("%s without the cookie: %v, want -32004", c.method, r)
		}
	}
	if r := thief.call("rpc.ping", nil); r["result"] != true {
		t.Errorf("rpc.ping without the cookie: %v, want true", r)
	}
	// Nothing it sent changed anything: the owner's wallets are the node's.
	if names := must[[]string](t)(loader.ListWallets(ctx)); len(names) != 1 || names[0] != "alice" {
		t.Errorf("listWallets after the attempts: %v", names)
	}
	bob := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "bob"))
	bobAddr := must[string](t)(bob.GetNewAddress(ctx))
	if mine := must[bool](t)(bob.IsSpendable(ctx, bobAddr)); !mine {
		t.Error("the node's new wallet does not own its new address")
	}
	if bal := must[int64](t)(alice.GetBalance(ctx)); bal != reward {
		t.Errorf("alice's balance %d, want %d", bal, reward)
	}

	// A wrong cookie: refused, and the connection closed.
	if r := thief.call("rpc.auth", map[string]any{"cookie": strings.Repeat("0", 64)}); errCode(r) != -32004 {
		t.Errorf("rpc.auth with a wrong cookie: %v", r)
	}
	if rest, err := io.ReadAll(thief.r); err != nil || len(rest) != 0 {
		t.Errorf("after a wrong cookie: %q %v, want end of stream", rest, err)
	}
	// The right one, raw.
	b, _ := os.ReadFile(cookie)
	friend := rawDial(t, "tcp", hostport)
	if r := friend.call("rpc.auth", map[string]any{"cookie": string(b)}); r["result"] != true {
		t.Errorf("rpc.auth with the cookie: %v", r)
	}
	if r := friend.call("Init.makeNode", nil); r["result"] == nil {
		t.Errorf("Init.makeNode after rpc.auth: %v", r)
	}

	if err := nodeProc.stop(syscall.SIGTERM); err != nil {
		t.Errorf("mpnode after SIGTERM: %v", err)
	}
	if _, err := os.Stat(cookie); !os.IsNotExist(err) {
		t.Errorf("cookie file after SIGTERM: %v", err)
	}
}

// localIP returns an IPv4 address of this host that is not loopback, or
// nil.
func localIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

// TestSocketRefusals: what the commands refuse, with exit 1 and a message
// saying why: a tcp: listener without a cookie file; a tcp: listener on a
// host that is not loopback; a dialler without the cookie.
func TestSocketRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"mpnode", []string{"-listen=tcp:127.0.0.1:0", "-wallet=none"}, "needs a cookie file for its clients: give -cookiefile=FILE, or -datadir=DIR"},
		{"mpnode", []string{"-listen=tls:127.0.0.1:0", "-wallet=none"}, "-listen=tls:... needs -tls-cert=FILE and -tls-key=FILE"},
		{"mpgui", []string{"-connect=tcp:127.0.0.1:1", "getblockcount"}, "needs the node's cookie: give -cookiefile=FILE"},
		{"mpwallet", []string{"-connect=tcp:127.0.0.1:1"}, "needs the node's cookie: give -cookiefile=FILE"},
		{"mpgui", []string{"-connect=tls:127.0.0.1:1", "-cookiefile=" + filepath.Join(t.TempDir(), "none"), "getblockcount"}, "no such file"},
	} {
		_, errOut, code := runBin(t, "", c.name, c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s %v: exit %d, %q; want %q", c.name, c.args, code, errOut, c.want)
		}
	}
	ip := localIP()
	if ip == nil {
		t.Skip("no address but loopback")
	}
	addr := "tcp:" + net.JoinHostPort(ip.String(), "0")
	_, errOut, code := runBin(t, "", "mpnode", "-listen="+addr, "-wallet=none", "-cookiefile="+filepath.Join(t.TempDir(), "c"))
	if code != 1 || !strings.Contains(errOut, ip.String()+" is not a loopback address") || !strings.Contains(errOut, "use tls:") {
		t.Errorf("mpnode -listen=%s: exit %d, %q", addr, code, errOut)
	}
}

// TestTLS: a node on tls: with a certificate from a test authority serves
// mpwallet and mpgui that trust that authority and send the cookie, on
// loopback and on another address of the host; a client that does not
// trust the authority is refused before anything is sent.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	hosts := []string{"127.0.0.1"}
	var ips []net.IP
	if ip := localIP(); ip != nil {
		ips, hosts = append(ips, ip), append(hosts, ip.String())
	}
	certs, err := testcert.New(dir, ips...)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testcert.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range hosts {
		datadir := filepath.Join(t.TempDir(), "node")
		nodeProc := start(t, "mpnode", "-listen=tls:"+net.JoinHostPort(host, "0"), "-tls-cert="+certs.Cert, "-tls-key="+certs.Key, "-datadir="+datadir, "-wallet=none")
		addr := nodeProc.waitLine(`listening on (tls:\S+)`)[1]
		cookie := filepath.Join(datadir, ".cookie")
		w := start(t, "mpwallet", "-connect="+addr, "-cookiefile="+cookie, "-tls-ca="+certs.CA)
		w.waitLine(`attached to`)
		out, errOut, code := gui(t, "createwallet w\ngenerate 2\n", "-connect="+addr, "-datadir="+datadir, "-tls-ca="+certs.CA)
		if code != 0 || !strings.Contains(out, "mined 2 blocks") {
			t.Fatalf("mpgui generate over %s: %d\n%s\n%s", addr, code, out, errOut)
		}
		for _, ca := range []string{"", other.CA} {
			args := []string{"-connect=" + addr, "-cookiefile=" + cookie, "getblockcount"}
			if ca != "" {
				args = append(args, "-tls-ca="+ca)
			}
			_, errOut, code := gui(t, "", args...)
			if code != 1 || !strings.Contains(errOut, "certificate signed by unknown authority") {
				t.Errorf("mpgui %v: exit %d, %q; want the certificate refused", args, code, errOut)
			}
		}
		nodeProc.stop(syscall.SIGTERM)
	}
}

// TestAcceptSurvivesEMFILE (issue 10 item 11): with 64 descriptors, 100
// connections make accept fail with EMFILE; the node backs off, says so,
// and once the connections have closed it serves a new one.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "node.sock")
	nodeProc := start(t, "mpnode", "-listen=unix:"+sock, "-wallet=none")
	nodeProc.waitLine(`listening on`)
	// Set now rather than by the shell: the Go runtime raises the soft
	// limit to the hard one at start, so both are lowered, after it.
	if err := unix.Prlimit(nodeProc.cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 64, Max: 64}, nil); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 100 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	nodeProc.waitLine(`accept failed; retrying.*too many open files`)
	for _, c := range conns {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, init := dial(t, "unix:"+sock)
	n, err := must[node.Node](t)(init.MakeNode(ctx)).GetBlockCount(ctx)
	if err != nil || n != 0 {
		t.Fatalf("a new connection after EMFILE: %d %v", n, err)
	}
}

// TestHelpListsSocketFlags: mpgui -h lists the address forms and the
// socket flags.
func TestHelpListsSocketFlags(t *testing.T) {
	_, errOut, code := gui(t, "", "-h")
	for _, f := range []string{"-connect ADDR", "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", "-cookiefile FILE", "-tls-ca FILE", "-datadir string"} {
		if code != 0 || !strings.Contains(errOut, f) {
			t.Errorf("mpgui -h (exit %d) does not list %q:\n%s", code, f, errOut)
		}
	}
}

// send writes one message, formatted.
func (c *rawClient) send(format string, args ...any) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.nc, format+"\n", args...); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message read.
func (c *rawClient) read() map[string]any {
	c.t.Helper()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("no message: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		c.t.Fatalf("%q", line)
	}
	return m
}
