// Package imageregistry is skiff's embedded OCI image registry, for edge sites
// that have no registry of their own.
//
// # Storage
//
// Content lives in JetStream on the engine's embedded NATS server (see
// bus.Config.JetStreamDir): blobs and manifests are objects of two object
// stores, named by their sha256 digest, so the same bytes are stored once
// whatever repository pushed them; tags and the list of manifests each
// repository holds are entries of a key-value bucket. JetStream fsyncs
// every message before acknowledging it and, with several servers,
// replicates each bucket to Config.Replicas of them (min(3, servers)),
// acknowledging once a majority has it; the registry answers a push only
// after those acknowledgements. Uploads are hashed into a local file while
// they arrive and enter the store only when complete and verified, so a
// digest in the store always names the bytes it was verified against.
//
// # Serving
//
// Handler serves the OCI distribution API v2: GET /v2/; blob HEAD and GET;
// uploads by POST (monolithic with ?digest=, cross-repository mount with
// ?mount=, or a session for chunked PATCH with Content-Range and a final
// PUT); manifest HEAD, GET, PUT and DELETE by tag or digest; tags/list with
// n and last. That is what go-containerregistry (crane), oras and docker
// need. Failures answer in the spec's JSON error format with its codes.
// Not served: blob deletion (blobs are shared and not reference-counted
// yet), the referrers API (clients fall back to tags), garbage collection.
//
// The engine mounts Authenticate(token, Handler()) at "/v2/" on the API
// server's HTTPS port: the cluster token as a Bearer token, or as the
// password of Basic auth with any user (`crane auth login -u skiff -p
// TOKEN`, `oras login`). It also runs Serve on the bus subject
// bus.SubjectRegistry, for node agents, which reach the control plane only
// through the bus.
//
// # Pulling on a node
//
// A node agent pulls through the bus with runtime/image, which speaks to
// registries with go-containerregistry over whatever http.RoundTripper it is
// given. Transport sends requests for Host (registry.skiff.local) over the
// bus and everything else to the network; Client.Resolve maps a pod's
// image to the embedded registry when it holds it. Wiring, with conn the
// agent's bus connection:
//
//	store, err := image.New(image.Config{
//		Dir:       filepath.Join(dataDir, "images"),
//		Transport: registry.Transport(conn, http.DefaultTransport),
//	})
//	resolver := registry.NewClient(conn)
//	// For each pod container (runtime/wasm's PodConfig.Resolve has this shape):
//	resolve := func(ctx context.Context, ref string) (string, error) {
//		r, ok, err := resolver.Resolve(ctx, ref)
//		if err != nil {
//			return ref, nil // embedded registry unreachable: pull as written (log err)
//		}
//		if ok {
//			return r, nil // "registry.skiff.local/hello:1"
//		}
//		return ref, nil
//	}
//	// then store.Pull(ctx, resolvedRef, policy, keychain) as for any image.
//
// The pull policy is computed from the pod's reference as written
// (image.DefaultPolicy), which keeps its tag, so it is the same for the
// resolved one. `skiff image import FILE NAME:TAG` pushes a module here from
// any machine with a kubeconfig.
package imageregistry
