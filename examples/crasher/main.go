//go:build wasip1

// Command crasher prints a line and exits with code 1: a container that
// fails at once, for restart policies, back-off and CrashLoopBackOff.
//
//	GOOS=wasip1 GOARCH=wasm go build -o crasher.wasm ./examples/crasher
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("crasher: starting and failing")
	fmt.Fprintln(os.Stderr, "crasher: exit 1")
	os.Exit(1)
}
