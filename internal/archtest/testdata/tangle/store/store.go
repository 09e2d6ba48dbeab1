// Package store is the control plane's, forbidden to the node side.
package store

const Name = "store"
