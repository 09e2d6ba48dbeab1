// Package netbench measures requests/s of a Wasm pod calling another Wasm
// pod through a Service's ClusterIP, beside the same two programs run
// natively on loopback, in one run (BenchmarkWasmToWasmThroughClusterIP).
//
// The programs are testdata/loadgen and testdata/server: one source each,
// built for GOOS=wasip1 (sockets through the SDK) and for the host, with
// only a small build-tagged file differing. Mixed rows (a native client
// against the Wasm server, a Wasm client against the native server, by
// ClusterIP and by pod IP) tell the Service proxy's cost from the Wasm
// client's and the Wasm server's.
package netbench
