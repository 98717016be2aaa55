package spawn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

// ParseAddr splits an endpoint address, "unix:PATH" or "tcp:HOST:PORT",
// into a network and an address for package net.
func ParseAddr(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || address == "" || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("bad address %q: want unix:PATH or tcp:HOST:PORT", addr)
	}
	return network, address, nil
}

// Dial connects to an endpoint listening on addr (see ParseAddr). The
// dialer serves no bootstrap object unless opts has one, so it mints ids
// starting with "c"; the listener's Init is conn.Bootstrap().
func Dial(ctx context.Context, addr string, opts *bridge.Options) (*bridge.Conn, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	var o bridge.Options
	if opts != nil {
		o = *opts
	}
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	if o.Name == "" {
		o.Name = addr
	}
	return bridge.New(nc, nc, &o), nil
}

// Server serves one bootstrap object to every connection accepted on a
// listener. All connections share the object, and so the process state.
type Server struct {
	ln    net.Listener
	init  bridge.Object
	opts  bridge.Options
	mu    sync.Mutex
	conns map[*bridge.Conn]struct{}
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once
}

// Listen listens on addr (see ParseAddr) and serves init to each
// connection until Close or Shutdown. A stale unix socket file left by a
// process that died is removed first.
func Listen(addr string, init bridge.Object, opts *bridge.Options) (*Server, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if c, err := net.Dial("unix", address); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another process is serving there", addr)
		}
		_ = os.Remove(address)
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, init: init, conns: map[*bridge.Conn]struct{}{}, done: make(chan struct{})}
	s.opts = *serveOptions(init, opts, "")
	// The one Init is shared: a connection that ends must not close it.
	s.opts.Bootstrap = bridge.Lend(init)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the listener's address in ParseAddr form.
func (s *Server) Addr() string {
	a := s.ln.Addr()
	return a.Network() + ":" + a.String()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		o := s.opts
		if o.Name == "" {
			o.Name = "client " + nc.RemoteAddr().String()
			if nc.RemoteAddr().String() == "" || nc.RemoteAddr().String() == "@" {
				o.Name = "client on " + s.Addr()
			}
		}
		c := bridge.New(nc, nc, &o)
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			continue
		default:
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			<-c.Done()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Conns reports the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting and shuts every connection down in order (see
// bridge.Conn.Shutdown), then waits for them.
func (s *Server) Shutdown() error {
	return s.stop(func(c *bridge.Conn) { _ = c.Shutdown() })
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	return s.stop(func(c *bridge.Conn) { _ = c.Close() })
}

func (s *Server) stop(end func(*bridge.Conn)) error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		conns := make([]*bridge.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		err = s.ln.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
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
