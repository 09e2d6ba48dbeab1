//go:build wasip1

// Command printenv prints what a Wasm container sees: its arguments, its
// environment (sorted) and the content of one file, named by argv[1] or the
// FILE environment variable (a file of a mounted volume), then exits 0. It
// exits 1 if the file cannot be read.
//
//	GOOS=wasip1 GOARCH=wasm go build -o printenv.wasm ./examples/printenv
package main

import (
	"fmt"
	"os"
	"slices"
)

func main() {
	fmt.Printf("args: %q\n", os.Args[1:])
	env := os.Environ()
	slices.Sort(env)
	for _, kv := range env {
		fmt.Println(kv)
	}
	file := os.Getenv("FILE")
	if len(os.Args) > 1 {
		file = os.Args[1]
	}
	if file == "" {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("--- %s\n%s", file, b)
}
