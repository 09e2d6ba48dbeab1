// Package runtime is the workload runtime interface the node agent drives:
// resolve a pod's image, start a container's process, wait for it, stop it,
// and run an extra process in a container's environment (exec and exec
// probes). Logs, status and port-forward are the agent's: a runtime only
// hands it the process's output and exit.
//
// runtime/wasm implements it on wazero; runtime/oci (runc) is to come.
package runtime
