// Package runtime will hold the workload runtime interface the node agent
// drives (resolve an image; create, start, stop and remove a pod's
// containers; status, logs, exec, port-forward) and its implementations:
// runtime/wasm on wazero and runtime/oci through runc.
//
// Not built yet: see the README's feature table.
package runtime
