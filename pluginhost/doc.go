// Package pluginhost runs plugins as child processes, the way an editor
// runs its extensions: each plugin is any executable, in any language,
// that serves the plugin protocol (the Plugin interface, "Init" on the
// wire) on its stdin and stdout. A folder of manifests lists the plugins
// (see Manifest); a Host starts them all at once, hands each one its own
// Host object (log, show a message, register a command, read a setting,
// as far as the manifest permits), runs their commands, restarts a plugin
// that crashes with exponential back-off until it crashes too often, and
// keeps every plugin's crash, hang or flood away from the others.
//
// A plugin's life, on the wire:
//
//	host → plugin  Init.activate {"host": {"$handle": "c1"}}      (ids shortened)
//	plugin → host  Host.registerCommand {"$self": "c1", "name": "hello", "title": "…", "run": {"$handle": "s1"}}
//	host → plugin  (answer) {"$handle": "c2"}              a Registration
//	plugin → host  (answer to activate) {"$handle": "s2"}  an Extension
//	host → plugin  Command.call {"$self": "s1", "args": ["world"]}
//	host → plugin  Extension.deactivate {"$self": "s2"}    at shutdown
//	host → plugin  release "s2", release "init"; the plugin exits
//
// A Go plugin's main is one line:
//
//	func main() { os.Exit(pluginhost.Serve(myPlugin{})) }
//
// docs/PLUGINS.md describes manifests, permissions, limits and the restart
// policy.
package pluginhost
