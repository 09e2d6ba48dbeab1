//go:build wasip1

// Command messaging talks to the other pods of its namespace over the
// cluster's bus (sdk.Publish, sdk.Request, sdk.Subscribe). Subjects are the
// namespace's own: a pod of another namespace using the same names neither
// hears nor answers these.
//
//	messaging serve SUBJECT [GREETING]     answer each request on SUBJECT with "GREETING, <data>" (default "hello"), forever
//	messaging ask SUBJECT DATA [WAIT]      request SUBJECT and print "reply: <answer>"; retry for WAIT seconds (default 0) while nobody answers
//	messaging publish SUBJECT DATA         publish once
//	messaging listen SUBJECT SECONDS       print every message on SUBJECT (wildcards allowed) for SECONDS, then "received N"
//
// ask exits 3 when nobody answered, 1 on any other error.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/skiffhq/skiff/sdk"
)

func main() {
	if len(os.Args) < 3 {
		fail(2, "usage: messaging serve|ask|publish|listen SUBJECT ...")
	}
	mode, subject, rest := os.Args[1], os.Args[2], os.Args[3:]
	switch mode {
	case "serve":
		greeting := "hello"
		if len(rest) > 0 {
			greeting = rest[0]
		}
		serve(subject, greeting)
	case "ask":
		if len(rest) < 1 {
			fail(2, "usage: messaging ask SUBJECT DATA [WAIT]")
		}
		wait := 0
		if len(rest) > 1 {
			wait, _ = strconv.Atoi(rest[1])
		}
		ask(subject, rest[0], time.Duration(wait)*time.Second)
	case "publish":
		if len(rest) < 1 {
			fail(2, "usage: messaging publish SUBJECT DATA")
		}
		if err := sdk.Publish(subject, []byte(rest[0])); err != nil {
			fail(1, err.Error())
		}
		fmt.Println("published to", subject)
	case "listen":
		secs := 10
		if len(rest) > 0 {
			secs, _ = strconv.Atoi(rest[0])
		}
		listen(subject, time.Duration(secs)*time.Second)
	default:
		fail(2, "unknown mode "+mode)
	}
}

func serve(subject, greeting string) {
	// A queue group: the replicas of a Deployment share the requests.
	sub, err := sdk.QueueSubscribe(subject, "serve")
	if err != nil {
		fail(1, err.Error())
	}
	fmt.Println("serving", subject)
	for {
		m, err := sub.Next(context.Background())
		if err != nil {
			fail(1, err.Error())
		}
		fmt.Printf("request on %s: %s\n", m.Subject, m.Data)
		if m.Reply == "" {
			continue
		}
		if err := m.Respond([]byte(greeting + ", " + string(m.Data))); err != nil {
			fmt.Fprintln(os.Stderr, "respond:", err)
		}
	}
}

func ask(subject, data string, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := sdk.Request(ctx, subject, []byte(data))
		cancel()
		switch {
		case err == nil:
			fmt.Printf("reply: %s\n", reply)
			return
		case errors.Is(err, sdk.ErrUnavailable) && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
		case errors.Is(err, sdk.ErrUnavailable):
			fail(3, "nobody answered: "+err.Error())
		default:
			fail(1, err.Error())
		}
	}
}

func listen(subject string, d time.Duration) {
	sub, err := sdk.Subscribe(subject)
	if err != nil {
		fail(1, err.Error())
	}
	fmt.Println("listening on", subject)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n := 0
	for {
		m, err := sub.Next(ctx)
		if errors.Is(err, sdk.ErrTimeout) {
			break
		}
		if err != nil {
			fail(1, err.Error())
		}
		n++
		fmt.Printf("message on %s: %s\n", m.Subject, m.Data)
	}
	fmt.Println("received", n)
}

func fail(code int, msg string) {
	fmt.Fprintln(os.Stderr, "messaging:", msg)
	os.Exit(code)
}
