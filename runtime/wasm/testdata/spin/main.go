// Command spin is a test guest for runtime/wasm: an infinite loop that never
// calls the host, which only cancelling the Run's context can stop.
package main

import "fmt"

var n uint64

func main() {
	fmt.Println("spinning")
	for {
		n++
	}
}
