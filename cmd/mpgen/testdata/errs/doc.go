// Package errs is where the tests of mpgen overlay one faulty declaration
// at a time.
package errs
