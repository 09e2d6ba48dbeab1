//go:build wasip1

// Command membomb allocates memory 1 MiB at a time, touching every page and
// keeping it, until it dies: with a memory limit (resources.limits.memory)
// skiff ends it as OOMKilled, exit code 137.
//
//	GOOS=wasip1 GOARCH=wasm go build -o membomb.wasm ./examples/membomb
package main

import "fmt"

var keep [][]byte

func main() {
	for i := 1; ; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		keep = append(keep, b)
		if i%16 == 0 {
			fmt.Printf("holding %d MiB\n", i)
		}
	}
}
