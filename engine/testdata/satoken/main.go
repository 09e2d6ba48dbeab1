//go:build wasip1

// Command satoken prints what a pod finds at the ServiceAccount mount
// (/var/run/secrets/kubernetes.io/serviceaccount): the namespace, the
// SHA-256 of ca.crt, and the token itself, so a test can use the token
// against the API. A test program: a real workload never logs its token.
// With an argument N it prints them again every N seconds, forever.
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"time"
)

const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	every := 0
	if len(os.Args) > 1 {
		every, _ = strconv.Atoi(os.Args[1])
	}
	for {
		ns, err1 := os.ReadFile(dir + "namespace")
		ca, err2 := os.ReadFile(dir + "ca.crt")
		tok, err3 := os.ReadFile(dir + "token")
		for _, err := range []error{err1, err2, err3} {
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		fmt.Printf("namespace=%s\nca.crt-sha256=%x\ntoken=%s\n", ns, sha256.Sum256(ca), tok)
		if every <= 0 {
			return
		}
		time.Sleep(time.Duration(every) * time.Second)
	}
}
