// Package node is a node-side part that reaches the store through relay.
package node

import (
	"example.com/tangle/lib"
	"example.com/tangle/relay"
)

var _ = lib.Name + relay.Name
