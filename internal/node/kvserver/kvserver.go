// Package kvserver is the control plane's key-value service for pods: the
// store behind sdk.KV. Each namespace has a JetStream key-value bucket of
// its own on the embedded bus; node agents, which the bus keeps away from
// JetStream, forward their pods' operations here as requests on
// bus.SubjectKV (protocol.KVRequest).
//
// Every server runs one, leader or not: JetStream is the store and keeps
// it consistent, and the servers share the requests as one NATS queue
// group. Each bucket republishes every change it stores to
// bus.SubjectKVEvents (JetStream's RePublish, done by the server as it
// stores), which is what a pod's watch subscribes to: a change seen there
// is stored, whichever server wrote it.
package kvserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/sdk/abi"
)

// DefaultMaxBucketBytes bounds one namespace's store when
// Config.MaxBucketBytes is zero: small values are the use (counters,
// leases, configuration), and the whole of JetStream is bounded by the
// bus's JetStreamMaxStore besides.
const DefaultMaxBucketBytes = 64 << 20

// workers is how many operations one server runs at once: each write
// waits for JetStream's fsync, so operations of different pods should not
// queue behind one another; JetStream orders writes of one key itself.
const workers = 16

// Config of the service.
type Config struct {
	// Bus is a control-plane connection to a bus server with JetStream.
	// Required. The service does not close it.
	Bus *bus.Conn
	// JetStream is the connection the buckets live behind, when it is not
	// Bus (a clustered server keeps JetStream on a bus of its own).
	// Default Bus.
	JetStream *bus.Conn
	// Replicas is how many servers keep each bucket (1 to 5). Default 1.
	Replicas int
	// MaxBucketBytes bounds each namespace's store; a write past it
	// fails. Default DefaultMaxBucketBytes.
	MaxBucketBytes int64
	Logger         *slog.Logger
}

// Server serves key-value requests.
type Server struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	sub *bus.Subscription

	mu      sync.Mutex
	buckets map[string]jetstream.KeyValue // by namespace
}

// Start serves bus.SubjectKV until Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Bus == nil {
		return nil, errors.New("kvserver: Bus is required")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxBucketBytes == 0 {
		cfg.MaxBucketBytes = DefaultMaxBucketBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	jsConn := cfg.JetStream
	if jsConn == nil {
		jsConn = cfg.Bus
	}
	js, err := jetstream.New(jsConn.NATS())
	if err != nil {
		return nil, fmt.Errorf("kvserver: jetstream: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "kvserver"), js: js, buckets: map[string]jetstream.KeyValue{}}
	// The service outlives Start's ctx: it runs until Stop.
	s.sub, err = bus.ServeConcurrent(context.WithoutCancel(ctx), cfg.Bus, bus.SubjectKV, "kvserver", workers, s.serve)
	if err != nil {
		return nil, fmt.Errorf("kvserver: %w", err)
	}
	// The server knows the subscription once Start returns: a request
	// made just after gets an answer, not "no responders".
	if err := cfg.Bus.Flush(ctx); err != nil {
		s.sub.Stop()
		return nil, fmt.Errorf("kvserver: flush: %w", err)
	}
	return s, nil
}

// Stop ends serving.
func (s *Server) Stop() { s.sub.Stop() }

// BucketName is the JetStream bucket of namespace's store.
func BucketName(namespace string) string { return "skiff-apps-" + namespace }

// validNamespace: a namespace is a DNS label, which is also a valid bucket
// name part and subject token; anything else is refused before it names a
// bucket.
func validNamespace(ns string) error {
	if ns == "" || len(ns) > 63 {
		return fmt.Errorf("namespace %q: not a DNS label", ns)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("namespace %q: not a DNS label", ns)
		}
	}
	return nil
}

// bucket is namespace's bucket; with create, it is made if missing.
// Without, a missing bucket is nil: the namespace has stored nothing.
func (s *Server) bucket(ctx context.Context, ns string, create bool) (jetstream.KeyValue, error) {
	s.mu.Lock()
	kv := s.buckets[ns]
	s.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	name := BucketName(ns)
	kv, err := s.js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		kv, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       name,
			Description:  "key-value store of namespace " + ns + "'s pods (sdk.KV)",
			MaxValueSize: abi.MaxValueSize,
			History:      1,
			MaxBytes:     s.cfg.MaxBucketBytes,
			Storage:      jetstream.FileStorage,
			Replicas:     s.cfg.Replicas,
			RePublish: &jetstream.RePublish{
				Source:      "$KV." + name + ".>",
				Destination: bus.KVEventsPrefix(ns) + ">",
			},
		})
		if err == nil {
			s.log.Info("kvserver: created bucket", "namespace", ns, "bucket", name)
		}
	}
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	s.mu.Lock()
	s.buckets[ns] = kv
	s.mu.Unlock()
	return kv, nil
}

func invalid(err error) protocol.KVResponse {
	return protocol.KVResponse{Code: protocol.KVInvalid, Message: err.Error()}
}

// serve runs one operation. Outcomes the pod handles (absent, exists,
// invalid) are codes in the response; an error is the store failing.
func (s *Server) serve(ctx context.Context, req protocol.KVRequest) (protocol.KVResponse, error) {
	if err := validNamespace(req.Namespace); err != nil {
		return invalid(err), nil
	}
	if err := abi.ValidKey(req.Key); err != nil {
		return invalid(err), nil
	}
	if len(req.Value) > abi.MaxValueSize {
		return invalid(fmt.Errorf("value of %d bytes (at most %d)", len(req.Value), abi.MaxValueSize)), nil
	}
	ctx, cancel := context.WithTimeout(ctx, bus.DefaultRequestTimeout)
	defer cancel()
	write := req.Op != protocol.KVGet && req.Op != protocol.KVDelete
	kv, err := s.bucket(ctx, req.Namespace, write)
	if err != nil {
		return protocol.KVResponse{}, err
	}
	if kv == nil { // nothing stored in this namespace yet
		if req.Op == protocol.KVGet {
			return protocol.KVResponse{Code: protocol.KVNotFound}, nil
		}
		return protocol.KVResponse{}, nil
	}
	var rev uint64
	switch req.Op {
	case protocol.KVGet:
		e, err := kv.Get(ctx, req.Key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return protocol.KVResponse{Code: protocol.KVNotFound}, nil
		}
		if err != nil {
			return protocol.KVResponse{}, fmt.Errorf("get %s: %w", req.Key, err)
		}
		return protocol.KVResponse{Value: e.Value(), Revision: e.Revision()}, nil
	case protocol.KVPut:
		rev, err = kv.Put(ctx, req.Key, req.Value)
	case protocol.KVCreate:
		rev, err = kv.Create(ctx, req.Key, req.Value)
	case protocol.KVUpdate:
		rev, err = kv.Update(ctx, req.Key, req.Value, req.Revision)
	case protocol.KVDelete:
		err = kv.Delete(ctx, req.Key)
	default:
		return invalid(fmt.Errorf("unknown operation %q", req.Op)), nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return protocol.KVResponse{Code: protocol.KVExists}, nil
	}
	if err != nil {
		return protocol.KVResponse{}, fmt.Errorf("%s %s in namespace %s: %w", req.Op, req.Key, req.Namespace, err)
	}
	return protocol.KVResponse{Revision: rev}, nil
}
