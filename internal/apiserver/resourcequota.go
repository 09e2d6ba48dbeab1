package apiserver

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/internal/quota"
)

var resourceQuotasGVR = schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}

// quotaRetries bounds how often a charge is tried again after another
// request (or another API server) charged the same quota first.
const quotaRetries = 10

// quotaLocks serialise the charges of one namespace inside this API server
// (striped by namespace, so their number is fixed): concurrent creates
// then take turns instead of failing each other's compare-and-swap. Across
// API servers the compare-and-swap on the quota alone keeps the count.
type quotaLocks [64]sync.Mutex

func (l *quotaLocks) of(ns string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(ns))
	return &l[h.Sum32()%uint32(len(l))]
}

// admitQuota is Kubernetes' ResourceQuota admission for a create (old nil)
// or an update of obj in res: it refuses what would take a quota of the
// namespace past status.hard (403, Kubernetes' wording) and otherwise
// charges the quotas, writing their status.used with a compare-and-swap
// before the object is stored. A request that fails after the charge (or
// a dry run, which is not charged) leaves usage high until the quota
// controller recounts, as in Kubernetes.
func (s *Server) admitQuota(ctx context.Context, res *resources.Resource, obj, old runtime.Object, dry bool) error {
	if !res.Namespaced {
		return nil
	}
	rqRes, ok := s.reg.Get(resourceQuotasGVR)
	if !ok {
		return nil
	}
	m := mustMeta(obj)
	ns, name := m.GetNamespace(), m.GetName()
	ev := quota.For(res.GroupResource())
	if old != nil && !ev.HandlesUpdate() {
		return nil
	}
	// Most namespaces have no quota: a look at this server's index (no
	// leader round trip) settles those. A quota created a moment ago on
	// another server may be missed for that moment, as Kubernetes' informer
	// cache may miss it.
	if s.cfg.Store.Count(prefix(rqRes, ns)) == 0 {
		return nil
	}
	lock := s.quotaLocks.of(ns)
	lock.Lock()
	defer lock.Unlock()
	charged := map[string]bool{} // quotas this request has charged already
	for attempt := 0; attempt < quotaRetries; attempt++ {
		objs, err := s.objs.list(ctx, rqRes, ns)
		if err != nil {
			return fmt.Errorf("list ResourceQuotas of namespace %s: %w", ns, err)
		}
		quotas := make([]*corev1.ResourceQuota, 0, len(objs))
		for _, o := range objs {
			if q, ok := o.(*corev1.ResourceQuota); ok && !charged[q.Name] {
				quotas = append(quotas, q)
			}
		}
		if len(quotas) == 0 {
			return nil
		}
		next, err := quota.Check(quotas, ev, obj, old)
		var refusal *quota.Refusal
		if errors.As(err, &refusal) {
			return apierrors.NewForbidden(res.GroupResource(), name, refusal)
		}
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		if dry {
			return nil
		}
		conflict := false
		for _, q := range next {
			rv, _ := parseRV(q.ResourceVersion)
			_, err := s.objs.update(ctx, rqRes, ns, q.Name, q, rv)
			if apierrors.IsConflict(err) {
				conflict = true
				continue
			}
			if err != nil {
				return fmt.Errorf("charge ResourceQuota %s: %w", q.Name, err)
			}
			charged[q.Name] = true
		}
		if !conflict {
			return nil
		}
	}
	return apierrors.NewConflict(rqRes.GroupResource(), ns, fmt.Errorf("resource quota evaluation: the quotas kept changing, try again"))
}
