// Package sdk will be the guest SDK for Wasm workloads compiled with
// GOOS=wasip1: an HTTP handler the host calls per request, outbound HTTP,
// messaging, key-value and configuration through documented host functions.
//
// Not built yet: see the README's feature table.
package sdk
