// Package conformance is the wire conformance suite of the bridge
// protocol: scripted conversations, kept as data in cases/*.json, that any
// implementation of the child side, in any language, can be run against.
//
// Each case runs against a fresh child started as a command that serves
// the protocol on its stdin and stdout. A case sends bytes (JSON values,
// raw text, LSP frames), matches what the child writes against patterns
// (with captured variables, so a handle id from one reply can be used in a
// later request), answers the requests the child makes of the runner
// (callbacks), and checks that the output closes and the process exits.
// Every case ends the same way: the child still answers, and at the end
// of its input it closes its output and exits with status 0.
//
// Run runs the suite and returns a Report; Main is the command line
// ("conformance [-run REGEXP] [-v] [-json FILE] -- CMD ARGS..."). The case
// format, the test interface a child must serve and the independent
// Python child are described in README.md.
package conformance
