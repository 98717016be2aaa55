// Package gentest tests the code that cmd/mpgen generates: its tests
// serve the interfaces of package fixture over a real connection and call
// every method through the generated proxies, and compare generated
// dispatch with the reflection path of package callbacks. Package plain
// has its bindings generated into another package, plain/plainipc, and
// is called the same way.
package gentest
