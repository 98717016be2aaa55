package spawn

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// cookieBytes is the number of random bytes in a cookie, as in Bitcoin
// Core's .cookie.
const cookieBytes = 32

func newCookie() (string, error) {
	b := make([]byte, cookieBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make a cookie: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// writeCookie writes cookie to path, mode 0600, atomically: to a temporary
// file beside it (created 0600, whatever the umask) that is then renamed
// over path, so that a reader sees the old cookie or the new one and never
// part of one. A symbolic link at path is replaced, not followed.
func writeCookie(path, cookie string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".cookie-")
	if err != nil {
		return fmt.Errorf("write the cookie file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write the cookie file %s: %w", path, err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.WriteString(cookie); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// readCookie returns the cookie in a cookie file written by a listener
// (see SocketOptions.CookieFile), without surrounding white space.
func readCookie(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the cookie: %w", err)
	}
	c := string(bytes.TrimSpace(b))
	if c == "" {
		return "", errors.New("read the cookie: " + path + " is empty")
	}
	return c, nil
}

// removeCookie removes the cookie file at path if it still holds cookie:
// a listener that started since with the same file keeps its own.
func removeCookie(path, cookie string) {
	if c, err := readCookie(path); err == nil && c == cookie {
		_ = os.Remove(path)
	}
}
