// Package doccheck holds tests that keep the documentation honest: every
// test that docs/SECURITY.md or docs/RELIABILITY.md cites as evidence must
// exist. It has no code of its own.
package doccheck
