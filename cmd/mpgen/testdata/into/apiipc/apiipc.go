// Package apiipc declares the names of the packages that the generated
// file imports, so that it must import them under other names.
package apiipc

type api int

var context, time, bridge, callbacks = api(1), 2, 3, 4

var _, _, _, _ = context, time, bridge, callbacks
