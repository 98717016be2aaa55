// Package sockflags holds the socket flags that mpnode, mpwallet and mpgui
// share (-cookiefile, -tls-cert, -tls-key, -tls-ca) and turns them into
// spawn.SocketOptions, so that every command checks and explains them the
// same way.
package sockflags

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mpbridge/mpbridge/spawn"
)

// AddrForms names the address forms, for flag help.
const AddrForms = "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT"

// CookieName is the name of the cookie file in a data directory.
const CookieName = ".cookie"

// Listener holds the flags of a command that listens.
type Listener struct {
	CookieFile string
	TLSCert    string
	TLSKey     string
}

// Register adds -cookiefile, -tls-cert and -tls-key to fs.
func (l *Listener) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.CookieFile, "cookiefile", "", "write the cookie that tcp: and tls: clients must send to `FILE` (mode 0600, removed on exit; default DIR/"+CookieName+" with -datadir=DIR)")
	fs.StringVar(&l.TLSCert, "tls-cert", "", "the listener's TLS certificate chain, PEM `FILE` (with -listen=tls:...)")
	fs.StringVar(&l.TLSKey, "tls-key", "", "the private key of -tls-cert, PEM `FILE`")
}

// Check reports flags that do not fit the address addr, as usage errors.
func (l *Listener) Check(addr string) error {
	scheme, _, err := spawn.ParseAddr(addr)
	if err != nil {
		return err
	}
	if scheme == "tls" && (l.TLSCert == "" || l.TLSKey == "") {
		return errors.New("-listen=tls:... needs -tls-cert=FILE and -tls-key=FILE")
	}
	if scheme != "tls" && (l.TLSCert != "" || l.TLSKey != "") {
		return errors.New("-tls-cert and -tls-key are for -listen=tls:HOST:PORT")
	}
	return nil
}

// Options returns the socket options for listening on addr: the cookie
// file is -cookiefile, else DIR/.cookie for -datadir=DIR; tcp: and tls:
// need one of them.
func (l *Listener) Options(addr, datadir string) (*spawn.SocketOptions, error) {
	scheme, _, err := spawn.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	so := &spawn.SocketOptions{CookieFile: l.CookieFile}
	if so.CookieFile == "" && datadir != "" {
		so.CookieFile = filepath.Join(datadir, CookieName)
	}
	if scheme != "unix" && so.CookieFile == "" {
		return nil, fmt.Errorf("-listen=%s needs a cookie file for its clients: give -cookiefile=FILE, or -datadir=DIR to write DIR/%s", addr, CookieName)
	}
	if scheme == "tls" {
		cert, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert=%s -tls-key=%s: %w", l.TLSCert, l.TLSKey, err)
		}
		so.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	}
	return so, nil
}

// Dialer holds the flags of a command that connects.
type Dialer struct {
	CookieFile string
	TLSCA      string
}

// Register adds -cookiefile and -tls-ca to fs. datadirHelp says where
// the cookie is found without -cookiefile.
func (d *Dialer) Register(fs *flag.FlagSet, datadirHelp string) {
	fs.StringVar(&d.CookieFile, "cookiefile", "", "send the cookie in `FILE` (the node's -cookiefile, or "+CookieName+" in its data directory) when connecting; "+datadirHelp)
	fs.StringVar(&d.TLSCA, "tls-ca", "", "with -connect=tls:..., trust the node's certificate if this certificate authority (PEM `FILE`) signed it (default: the system's)")
}

// Check reports flags that do not fit the address addr, as usage errors.
func (d *Dialer) Check(addr string) error {
	scheme, _, err := spawn.ParseAddr(addr)
	if err != nil {
		return err
	}
	if scheme != "tls" && d.TLSCA != "" {
		return errors.New("-tls-ca is for -connect=tls:HOST:PORT")
	}
	return nil
}

// Options returns the socket options for connecting to addr. The cookie
// is read from -cookiefile, else from DIR/.cookie where DIR is cookieDir
// (a -datadir); tcp: and tls: need one of them, and for unix: the cookie
// is sent only if the file exists (a unix socket needs none).
func (d *Dialer) Options(addr, cookieDir string) (*spawn.SocketOptions, error) {
	scheme, _, err := spawn.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	so := &spawn.SocketOptions{CookieFile: d.CookieFile}
	if so.CookieFile == "" && cookieDir != "" {
		so.CookieFile = filepath.Join(cookieDir, CookieName)
		if _, err := os.Stat(so.CookieFile); err != nil && scheme == "unix" {
			so.CookieFile = ""
		}
	}
	if scheme != "unix" && so.CookieFile == "" {
		return nil, fmt.Errorf("-connect=%s needs the node's cookie: give -cookiefile=FILE (the node writes it to DIR/%s for its -datadir=DIR, or to its -cookiefile)", addr, CookieName)
	}
	if scheme == "tls" {
		so.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
		if d.TLSCA != "" {
			pem, err := os.ReadFile(d.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("-tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-tls-ca=%s: no PEM certificate in it", d.TLSCA)
			}
			so.TLS.RootCAs = pool
		}
	}
	return so, nil
}
