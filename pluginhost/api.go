package pluginhost

//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen

import (
	"context"

	"github.com/go-json-experiment/json/jsontext"
)

// Plugin is the bootstrap object a plugin process serves on its stdin and
// stdout ("Init" on the wire). The host calls Activate once, right after
// starting the plugin, with the plugin's own Host.
//
//mpgen:interface
//mpgen:name Init
type Plugin interface {
	// Activate starts the plugin. host stays valid for as long as the
	// returned Extension lives: the host keeps it until it deactivates the
	// plugin. Commands are registered through host.RegisterCommand, during
	// Activate or later.
	Activate(ctx context.Context, host API) (Extension, error)
}

// Extension is an active plugin, as Plugin.Activate returns it.
//
//mpgen:interface
type Extension interface {
	// Deactivate is called before the host stops the plugin in order (not
	// after a crash). The plugin should save what it must; the host then
	// releases the Extension and the plugin's Init, and the process
	// should exit.
	Deactivate(ctx context.Context) error
}

// API is what a plugin may call back ("Host" on the wire): each plugin
// gets its own, which serves only the methods its manifest lists under
// "permissions" (others fail with code -32601, naming the missing
// permission).
//
//mpgen:interface
//mpgen:name Host
type API interface {
	// Log writes a line to the host's log, prefixed with the plugin's
	// name. level is "debug", "info", "warn" or "error". Lines over the
	// plugin's rate limit are dropped and counted, and the call fails
	// with code -32003.
	Log(ctx context.Context, level, message string) error
	// ShowMessage shows a message to the user.
	ShowMessage(ctx context.Context, message string) error
	// RegisterCommand makes run callable as the command name, described
	// by title, until the returned Registration is disposed or released,
	// or the plugin stops. A name another plugin has registered is
	// refused.
	RegisterCommand(ctx context.Context, name, title string, run Command) (Registration, error)
	// GetSetting returns the value of the setting key from the plugin's
	// manifest ("settings"), or null if it has none.
	GetSetting(ctx context.Context, key string) (jsontext.Value, error)
}

// Command runs a command with the words the user typed after its name and
// returns the text to show.
//
//mpgen:interface
type Command func(ctx context.Context, args []string) (string, error)

// Registration is a registered command. Dispose unregisters it; so does
// releasing it.
//
//mpgen:interface
type Registration interface {
	Dispose(ctx context.Context) error
}
