// Command trap is a test guest for runtime/wasm: it panics, which the Go
// runtime turns into a message on stderr and exit code 2.
package main

func main() {
	panic("guest panic on purpose")
}
