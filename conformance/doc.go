// Package conformance will be skiff's conformance suite: behavioural tests
// over the Kubernetes API, run against an embedded engine by default or
// against any cluster named by a kubeconfig.
//
// Not built yet: see the README's feature table.
package conformance
