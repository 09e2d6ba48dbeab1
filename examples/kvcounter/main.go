//go:build wasip1

// Command kvcounter keeps counters in its namespace's key-value store
// (sdk.KV), incremented with compare-and-set so that any number of pods may
// count at once without losing an increment. It is a command and an SDK
// handler module in one: built as a command it runs main; built with
// -buildmode=c-shared it serves HTTP through the handler registered in
// init.
//
//	kvcounter incr KEY [N]   add 1, N times, and print "KEY = <value> (revision <r>)"
//	kvcounter get KEY        print "KEY = <value> (revision <r>)"; exit 3 if KEY is absent
//	kvcounter watch KEY N    print the next N changes of KEY ("KEY -> <value>"), then exit
//
// As a handler: POST /incr/KEY increments and answers the value, GET /KEY
// reads it (404 when absent).
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/sdk"
)

func init() {
	sdk.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, ok := strings.CutPrefix(r.URL.Path, "/incr/"); ok && r.Method == http.MethodPost {
			v, _, err := incr(key)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, v)
			return
		}
		v, _, err := get(strings.TrimPrefix(r.URL.Path, "/"))
		switch {
		case errors.Is(err, sdk.ErrNotFound):
			http.NotFound(w, r)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			fmt.Fprintln(w, v)
		}
	})
}

// incr adds one to key: read, compute, write only if nobody wrote since,
// and start again if somebody did.
func incr(key string) (int, uint64, error) {
	kv := sdk.KV()
	for {
		e, err := kv.Get(key)
		if errors.Is(err, sdk.ErrNotFound) {
			rev, err := kv.Create(key, []byte("1"))
			if errors.Is(err, sdk.ErrExists) {
				continue // another pod created it first
			}
			return 1, rev, err
		}
		if err != nil {
			return 0, 0, err
		}
		n, err := strconv.Atoi(string(e.Value))
		if err != nil {
			return 0, 0, fmt.Errorf("%s holds %q, not a number", key, e.Value)
		}
		rev, err := kv.Update(key, []byte(strconv.Itoa(n+1)), e.Revision)
		if errors.Is(err, sdk.ErrExists) {
			continue // another pod incremented first
		}
		return n + 1, rev, err
	}
}

func get(key string) (int, uint64, error) {
	e, err := sdk.KV().Get(key)
	if err != nil {
		return 0, 0, err
	}
	n, err := strconv.Atoi(string(e.Value))
	return n, e.Revision, err
}

func main() {
	if len(os.Args) < 3 {
		fail(2, "usage: kvcounter incr|get|watch KEY ...")
	}
	mode, key := os.Args[1], os.Args[2]
	switch mode {
	case "incr":
		times := 1
		if len(os.Args) > 3 {
			times, _ = strconv.Atoi(os.Args[3])
		}
		var v int
		var rev uint64
		var err error
		for range times {
			if v, rev, err = incr(key); err != nil {
				fail(1, err.Error())
			}
		}
		fmt.Printf("%s = %d (revision %d)\n", key, v, rev)
	case "get":
		v, rev, err := get(key)
		if errors.Is(err, sdk.ErrNotFound) {
			fail(3, key+" is not set")
		}
		if err != nil {
			fail(1, err.Error())
		}
		fmt.Printf("%s = %d (revision %d)\n", key, v, rev)
	case "watch":
		n := 1
		if len(os.Args) > 3 {
			n, _ = strconv.Atoi(os.Args[3])
		}
		w, err := sdk.KV().Watch(key)
		if err != nil {
			fail(1, err.Error())
		}
		fmt.Println("watching", key)
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			e, err := w.Next(ctx)
			cancel()
			if err != nil {
				fail(1, err.Error())
			}
			if e.Deleted {
				fmt.Printf("%s deleted\n", e.Key)
			} else {
				fmt.Printf("%s -> %s\n", e.Key, e.Value)
			}
		}
	default:
		fail(2, "unknown mode "+mode)
	}
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, "kvcounter:", msg)
	os.Exit(code)
}
