package main

import (
	"os"

	"github.com/mpbridge/mpbridge/conformance"
)

func init() {
	register(&command{
		name:    "conformance",
		args:    "[-run REGEXP] [-v] [-json FILE] -- CMD ARGS...",
		summary: "run the wire conformance suite against a child that serves on stdio",
		run: func(args []string) int {
			return conformance.Main(args, os.Stdout, os.Stderr)
		},
	})
}
