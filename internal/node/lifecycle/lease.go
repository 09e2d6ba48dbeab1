package lifecycle

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// renewLease renews the node's Lease in kube-node-lease if LeaseRenewInterval
// has passed since the last renewal, in the background: a heartbeat is a bus
// message and must not wait for a raft write. One renewal per node is in
// flight at a time; a failed one is tried again at the next heartbeat.
func (c *Controller) renewLease(ctx context.Context, name string) {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	if c.renewing[name] || now.Sub(c.renewed[name]) < c.cfg.LeaseRenewInterval {
		c.mu.Unlock()
		return
	}
	c.renewing[name] = true
	c.renewals.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.renewals.Done()
		err := c.writeLease(ctx, name, now)
		c.mu.Lock()
		delete(c.renewing, name)
		if err == nil {
			c.renewed[name] = now
		}
		c.mu.Unlock()
		if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
			c.log.Warn("renew node lease", "node", name, "err", err)
		}
	}()
}

// leaseDurationSeconds is what a Lease says its holder's silence may last:
// a renew interval (renewals are that far apart) plus the grace period,
// rounded up to a whole second; so a Lease has expired about when the
// node went Unknown.
func (c *Controller) leaseDurationSeconds() int32 {
	return int32((c.cfg.LeaseRenewInterval + c.cfg.GracePeriod + time.Second - 1) / time.Second)
}

// writeLease creates or renews the node's Lease as a kubelet does: holder
// the node's name, owned by the Node (so the garbage collector removes it
// with the node), renewTime the heartbeat's arrival.
func (c *Controller) writeLease(ctx context.Context, name string, at time.Time) error {
	leases := c.cfg.Client.CoordinationV1().Leases(LeaseNamespace)
	renew := metav1.NewMicroTime(at)
	cur, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := c.cfg.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: LeaseNamespace,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(c.leaseDurationSeconds()),
				RenewTime: &renew}}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	cur.Spec.HolderIdentity, cur.Spec.LeaseDurationSeconds, cur.Spec.RenewTime = ptr.To(name), ptr.To(c.leaseDurationSeconds()), &renew
	_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}
