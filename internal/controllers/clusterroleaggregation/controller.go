// Package clusterroleaggregation is Kubernetes' ClusterRole aggregation
// controller (pkg/controller/clusterroleaggregation): a ClusterRole with an
// aggregationRule gets as its rules the union of the rules of every other
// ClusterRole its selectors match, kept current as those change. This is
// how admin, edit and view grow when a CRD's author labels a role
// rbac.authorization.k8s.io/aggregate-to-view.
package clusterroleaggregation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	rbacinformers "k8s.io/client-go/informers/rbac/v1"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Name is the controller's name.
const Name = "clusterrole-aggregation-controller"

// Config of a controller.
type Config struct {
	Client       kubernetes.Interface              // required
	ClusterRoles rbacinformers.ClusterRoleInformer // required
	Logger       *slog.Logger
}

// Controller fills aggregated ClusterRoles.
type Controller struct {
	client kubernetes.Interface
	roles  rbaclisters.ClusterRoleLister
	loop   *controller.Loop
}

// New builds a controller; Run starts it.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.ClusterRoles == nil {
		return nil, errors.New("clusterroleaggregation: Client and ClusterRoles are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{client: cfg.Client, roles: cfg.ClusterRoles.Lister()}
	inf := cfg.ClusterRoles.Informer()
	c.loop = &controller.Loop{Name: Name, Queue: controller.NewQueue(Name), Sync: c.sync,
		Synced: []cache.InformerSynced{inf.HasSynced}, Log: cfg.Logger}
	// Any change may change what any aggregated role selects: every
	// aggregated role is looked at again, as Kubernetes' controller does.
	enqueueAll := func(any) { c.enqueueAggregated() }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueAll,
		UpdateFunc: func(_, n any) { enqueueAll(n) }, DeleteFunc: enqueueAll}); err != nil {
		return nil, fmt.Errorf("clusterroleaggregation: %w", err)
	}
	return c, nil
}

func (c *Controller) enqueueAggregated() {
	roles, err := c.roles.List(labels.Everything())
	if err != nil {
		return
	}
	for _, r := range roles {
		if r.AggregationRule != nil {
			c.loop.Queue.Add(r.Name)
		}
	}
}

// Run blocks until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.roles.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if role.AggregationRule == nil {
		return nil
	}
	rules, err := c.aggregate(role)
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(rules, role.Rules) {
		return nil
	}
	next := role.DeepCopy()
	next.Rules = rules
	_, err = c.client.RbacV1().ClusterRoles().Update(ctx, next, metav1.UpdateOptions{})
	return err
}

// aggregate is the union of the selected roles' rules, without repeats, in
// the selected roles' name order (stable across runs).
func (c *Controller) aggregate(role *rbacv1.ClusterRole) ([]rbacv1.PolicyRule, error) {
	selected := map[string]*rbacv1.ClusterRole{}
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return nil, fmt.Errorf("clusterrole %s: selector: %w", role.Name, err)
		}
		matched, err := c.roles.List(s)
		if err != nil {
			return nil, err
		}
		for _, m := range matched {
			if m.Name != role.Name {
				selected[m.Name] = m
			}
		}
	}
	names := make([]string, 0, len(selected))
	for n := range selected {
		names = append(names, n)
	}
	sort.Strings(names)
	var rules []rbacv1.PolicyRule
	for _, n := range names {
		for _, r := range selected[n].Rules {
			if !contains(rules, r) {
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

func contains(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, have := range rules {
		if equality.Semantic.DeepEqual(have, r) {
			return true
		}
	}
	return false
}
