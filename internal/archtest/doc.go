// Package archtest holds skiff's architecture rules, which part may depend on
// which, as a table (rules.go), and the test that checks the tree against
// it with `go list -deps`. docs/architecture.md draws the parts and states the
// same rules in words; a change to one is a change to both.
//
// A rule names its parts (package patterns), what they must not depend on,
// directly or through any chain of non-test imports, and the imports it
// tolerates for now. A violation is reported with the forbidden package, the
// package that imports it and the whole chain from the part, so the fix is
// visible from the failure alone. Test files are outside the rules: a test
// may start a whole engine.
//
// Patterns are those of `go list` with one shorthand: "./x/..." is package x
// of skiff's module and everything below it, "std" is the standard library,
// "..." is every package.
package archtest
