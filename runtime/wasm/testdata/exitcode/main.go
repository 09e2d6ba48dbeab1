// Command exitcode is a test guest for runtime/wasm: it exits with the code
// given as argv[1].
package main

import (
	"os"
	"strconv"
)

func main() {
	code, err := strconv.Atoi(os.Args[1])
	if err != nil {
		os.Exit(100)
	}
	os.Exit(code)
}
