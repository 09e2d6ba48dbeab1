// Command sleeper is a test guest for runtime/wasm: it sleeps for an hour,
// which only cancelling the Run's context can cut short.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("sleeping")
	time.Sleep(time.Hour)
	fmt.Println("woke up")
}
