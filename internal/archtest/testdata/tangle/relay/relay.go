// Package relay imports the store, which the node side must not link.
package relay

import "example.com/tangle/store"

const Name = "relay:" + store.Name
