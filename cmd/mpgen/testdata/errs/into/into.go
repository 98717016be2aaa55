// Package into is where the tests of mpgen generate the faulty
// declarations of package errs into, when the case asks for another
// package.
package into

// takenProxy is a name mpgen would generate for an interface Taken.
type takenProxy int
