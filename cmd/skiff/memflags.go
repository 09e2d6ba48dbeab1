package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
)

// addMemoryFlags adds a node's memory flags: --default-pod-memory-limit and
// --eviction-hard, into the engine's or the worker's configuration fields.
func addMemoryFlags(cmd *cobra.Command, defaultLimit, evictionAvailable *int64) {
	f := cmd.Flags()
	*defaultLimit = 512 << 20
	f.Var(&memoryLimitFlag{dst: defaultLimit}, "default-pod-memory-limit",
		`memory limit of each Wasm container that sets none (and gets none from a LimitRange), a Kubernetes quantity; "none" for no limit`)
	*evictionAvailable = 100 << 20
	f.Var(&evictionFlag{dst: evictionAvailable}, "eviction-hard",
		`evict pods when the node's available memory falls below this, as the kubelet's flag ("memory.available<100Mi"); "none" for no eviction`)
}

// memoryLimitFlag is a quantity of bytes; "none" stores -1, which the
// engine reads as no limit.
type memoryLimitFlag struct{ dst *int64 }

func (f *memoryLimitFlag) String() string {
	if f.dst == nil {
		return ""
	}
	if *f.dst < 0 {
		return "none"
	}
	return resource.NewQuantity(*f.dst, resource.BinarySI).String()
}

func (f *memoryLimitFlag) Set(s string) error {
	if s == "none" {
		*f.dst = -1
		return nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("a quantity such as 512Mi, or none: %w", err)
	}
	if q.Sign() <= 0 {
		return fmt.Errorf("%s: must be more than 0 (none for no limit)", s)
	}
	*f.dst = q.Value()
	return nil
}

func (f *memoryLimitFlag) Type() string { return "quantity" }

// evictionFlag takes the kubelet's --eviction-hard syntax for the one
// signal the node watches, memory.available with an absolute quantity.
type evictionFlag struct{ dst *int64 }

func (f *evictionFlag) String() string {
	if f.dst == nil {
		return ""
	}
	if *f.dst < 0 {
		return "none"
	}
	return "memory.available<" + resource.NewQuantity(*f.dst, resource.BinarySI).String()
}

func (f *evictionFlag) Set(s string) error {
	if s == "none" {
		*f.dst = -1
		return nil
	}
	v, ok := strings.CutPrefix(s, "memory.available<")
	if !ok || strings.HasSuffix(v, "%") {
		return fmt.Errorf("%q: want memory.available<QUANTITY (such as memory.available<100Mi) or none", s)
	}
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 {
		return fmt.Errorf("%q: want a positive quantity after memory.available<", s)
	}
	*f.dst = q.Value()
	return nil
}

func (f *evictionFlag) Type() string { return "threshold" }
