// Package customresource lets a Go program that embeds skiff define a
// custom resource kind from a Go type and run a controller for it in the
// same process: Define reflects the type into a CustomResourceDefinition
// (structural schema, status subresource, printer columns), Install
// registers it with any Kubernetes API (skiff's in-process one or a remote
// one), Client reads and writes objects as the Go type, and Controller runs
// Kubernetes' informer and work-queue loop around a reconcile function.
//
// It uses only client-go and the apiextensions types, so a controller
// written against it runs unchanged against a Kubernetes cluster.
package customresource
