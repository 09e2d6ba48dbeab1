// Command membomb is a test guest for runtime/wasm: it allocates 1 MiB
// chunks forever and keeps them, until its memory limit stops it.
package main

import "fmt"

var keep [][]byte

func main() {
	for i := 0; ; i++ {
		b := make([]byte, 1<<20)
		// Touch every page so the memory is really used.
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		keep = append(keep, b)
		if i%8 == 0 {
			fmt.Printf("allocated %d MiB\n", i+1)
		}
	}
}
