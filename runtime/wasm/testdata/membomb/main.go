// Command membomb is a test guest for runtime/wasm: it allocates 1 MiB
// chunks and keeps them, until its memory limit stops it.
//
// With an argument N it stops by itself after N MiB and exits with code 3:
// a test that expects a limit to stop it is then bounded even where the
// limit is missing (the test fails instead of eating the machine).
package main

import (
	"fmt"
	"os"
	"strconv"
)

var keep [][]byte

func main() {
	maxMiB := -1
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: membomb [MAX_MIB]")
			os.Exit(64)
		}
		maxMiB = n
	}
	for i := 0; maxMiB < 0 || i < maxMiB; i++ {
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
	fmt.Printf("allocated %d MiB and no limit stopped it\n", maxMiB)
	os.Exit(3)
}
