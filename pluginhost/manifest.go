package pluginhost

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Permissions are the Host methods a manifest may list under
// "permissions", by their wire names.
var Permissions = []string{"log", "showMessage", "registerCommand", "getSetting"}

// Defaults of a manifest's limits.
const (
	DefaultCommandTimeout  = 10 * time.Second
	DefaultActivateTimeout = 10 * time.Second
	DefaultLiveness        = 10 * time.Second
	DefaultMaxMessage      = 1 << 20
	DefaultMaxQueued       = 8 << 20
	DefaultMaxInFlight     = 64
	DefaultLogRate         = 50
)

// Manifest describes one plugin: a JSON file in the plugins folder.
//
//	{
//	  "name": "hello",
//	  "argv": ["python3", "hello.py"],
//	  "framing": "lines",
//	  "permissions": ["log", "registerCommand", "getSetting"],
//	  "settings": {"greeting": "Hello"},
//	  "limits": {"commandTimeout": "5s"}
//	}
//
// Unknown members are errors, so a typo does not pass unnoticed.
type Manifest struct {
	// Name names the plugin in logs and commands: letters, digits, '.',
	// '_' and '-'. Default: the manifest's file name without ".json".
	Name string `json:"name,omitzero"`
	// Argv is the command line that starts the plugin, as given (no
	// -serve is added). argv[0] is looked up like spawn.LookPath does; a
	// relative path with a slash in it is taken from the manifest's
	// folder, which is also the plugin's working directory.
	Argv []string `json:"argv"`
	// Framing is "lines" (newline-delimited JSON, the default) or "lsp"
	// (Content-Length headers).
	Framing string `json:"framing,omitzero"`
	// Permissions lists the Host methods the plugin may call (see
	// Permissions). Others fail with code -32601.
	Permissions []string `json:"permissions,omitzero"`
	// Settings are what Host.getSetting returns, by key.
	Settings map[string]jsontext.Value `json:"settings,omitzero"`
	// Limits bound what the plugin may cost the host.
	Limits Limits `json:"limits,omitzero"`

	// Dir is the folder the manifest was read from (not part of the
	// file): the plugin's working directory. Empty means the host's.
	Dir string `json:"-"`
}

// Limits are one plugin's limits; zero fields take the defaults.
type Limits struct {
	// CommandTimeout bounds one command: past it the call is cancelled
	// and fails with -32800. Default 10s.
	CommandTimeout Duration `json:"commandTimeout,omitzero"`
	// ActivateTimeout bounds Init.activate; a plugin that takes longer
	// is stopped and counted as a crash. Default 10s.
	ActivateTimeout Duration `json:"activateTimeout,omitzero"`
	// Liveness is how long the plugin may stay silent, not even
	// answering rpc.ping, while the host waits for it; then it is killed
	// and restarted. It covers start-up too: the plugin must start
	// answering within it. Default 10s; "-1s" turns the check off.
	Liveness Duration `json:"liveness,omitzero"`
	// MaxMessage is the largest message accepted from the plugin, in
	// bytes. Default 1 MiB.
	MaxMessage int `json:"maxMessage,omitzero"`
	// MaxQueued bounds the host's unsent output to the plugin, in bytes:
	// past it the host stops reading the plugin until it reads again.
	// Default 8 MiB.
	MaxQueued int `json:"maxQueued,omitzero"`
	// MaxInFlight bounds the plugin's calls into the host served at once;
	// more fail with -32003. Default 64.
	MaxInFlight int `json:"maxInFlight,omitzero"`
	// LogRate is how many lines a second the plugin may log, show and
	// write to stderr (each counted apart), with bursts of as many.
	// Default 50.
	LogRate int `json:"logRate,omitzero"`
}

// Duration is a time.Duration written as a string such as "5s" or
// "250ms".
type Duration time.Duration

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// ParseManifest reads a manifest. dir is the folder it came from, and
// defaultName the name it gets if it has none.
func ParseManifest(data []byte, dir, defaultName string) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m, json.RejectUnknownMembers(true)); err != nil {
		return nil, err
	}
	if m.Name == "" {
		m.Name = defaultName
	}
	m.Dir = dir
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

// check validates m and fills in its defaults.
func (m *Manifest) check() error {
	if !nameRE.MatchString(m.Name) {
		return fmt.Errorf("name %q: use letters, digits, '.', '_' and '-'", m.Name)
	}
	if len(m.Argv) == 0 || m.Argv[0] == "" {
		return fmt.Errorf("plugin %s: argv is missing or empty", m.Name)
	}
	switch m.Framing {
	case "":
		m.Framing = "lines"
	case "lines", "lsp":
	default:
		return fmt.Errorf("plugin %s: framing %q: use \"lines\" or \"lsp\"", m.Name, m.Framing)
	}
	for _, p := range m.Permissions {
		if !slices.Contains(Permissions, p) {
			return fmt.Errorf("plugin %s: unknown permission %q (known: %s)", m.Name, p, strings.Join(Permissions, ", "))
		}
	}
	l := &m.Limits
	for _, f := range []struct {
		name string
		v    *Duration
		def  time.Duration
	}{
		{"commandTimeout", &l.CommandTimeout, DefaultCommandTimeout},
		{"activateTimeout", &l.ActivateTimeout, DefaultActivateTimeout},
		{"liveness", &l.Liveness, DefaultLiveness},
	} {
		if *f.v == 0 {
			*f.v = Duration(f.def)
		}
		if *f.v < 0 && f.name != "liveness" {
			return fmt.Errorf("plugin %s: limits.%s must be positive", m.Name, f.name)
		}
	}
	for _, f := range []struct {
		name   string
		v      *int
		def    int
		minVal int
	}{
		{"maxMessage", &l.MaxMessage, DefaultMaxMessage, 1024},
		{"maxQueued", &l.MaxQueued, DefaultMaxQueued, 1024},
		{"maxInFlight", &l.MaxInFlight, DefaultMaxInFlight, 1},
		{"logRate", &l.LogRate, DefaultLogRate, 1},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.minVal {
			return fmt.Errorf("plugin %s: limits.%s must be at least %d", m.Name, f.name, f.minVal)
		}
	}
	return nil
}

// allowed reports whether the manifest grants permission to call method.
func (m *Manifest) allowed(method string) bool { return slices.Contains(m.Permissions, method) }

// LoadDir reads every *.json file in dir as a manifest, in name order.
// It returns the good ones, and an error naming each file that could not
// be read or is invalid, or whose name another manifest already has;
// those are left out, and the others are still returned.
func LoadDir(dir string) ([]*Manifest, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("plugins folder: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var (
		out  []*Manifest
		errs []error
		seen = map[string]string{}
	)
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		base := filepath.Base(path)
		m, err := ParseManifest(data, abs, strings.TrimSuffix(base, ".json"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if other, dup := seen[m.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: plugin name %q is already used by %s", path, m.Name, other))
			continue
		}
		seen[m.Name] = path
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}
