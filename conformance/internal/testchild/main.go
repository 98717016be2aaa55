// Command testchild serves the conformance test interface (the test
// service of internal/testsvc) on stdin and stdout when started with
// -serve. It stands in for "mpbridge -serve" when running the conformance
// suite by hand:
//
//	go build -o /tmp/testchild ./conformance/internal/testchild
//	mpbridge conformance -- /tmp/testchild -serve
package main

import (
	"fmt"
	"os"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

func main() {
	if serving, code := spawn.Serve(callbacks.Export[testsvc.Init](&testsvc.Service{}), nil); serving {
		os.Exit(code)
	}
	fmt.Fprintln(os.Stderr, "usage: testchild -serve")
	os.Exit(2)
}
