package pluginhost

import (
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/spawn"
)

// Serve serves p as a plugin on stdin and stdout (whatever the process's
// arguments) until the host releases it or its input ends, and returns
// the exit code. A Go plugin's main is:
//
//	func main() { os.Exit(pluginhost.Serve(myPlugin{})) }
func Serve(p Plugin) int {
	return spawn.ServeStdio(callbacks.Export[Plugin](p), nil)
}
