package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Printers of the apps group.
func init() {
	register("apps", "Deployment", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Ready", "string", "Number of the pod with ready state"),
		col("Up-to-date", "integer", appsv1.DeploymentStatus{}.SwaggerDoc()["updatedReplicas"]),
		col("Available", "integer", appsv1.DeploymentStatus{}.SwaggerDoc()["availableReplicas"]),
		ageColumn,
		containersColumn,
		imagesColumn,
		wide("Selector", "string", appsv1.DeploymentSpec{}.SwaggerDoc()["selector"]),
	}, func(d *appsv1.Deployment, now time.Time) []any {
		names, images := containerCells(d.Spec.Template.Spec.Containers)
		// Kubernetes prints a Deployment's selector bare (empty when
		// there is none), unlike the other workloads' <none>.
		selector := "<invalid>"
		if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
			selector = s.String()
		}
		return []any{
			d.Name,
			fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, replicas(d.Spec.Replicas)),
			int64(d.Status.UpdatedReplicas),
			int64(d.Status.AvailableReplicas),
			age(d.CreationTimestamp, now),
			names, images, selector,
		}
	}))
	register("apps", "ReplicaSet", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Desired", "integer", appsv1.ReplicaSetSpec{}.SwaggerDoc()["replicas"]),
		col("Current", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["replicas"]),
		col("Ready", "integer", appsv1.ReplicaSetStatus{}.SwaggerDoc()["readyReplicas"]),
		ageColumn,
		containersColumn,
		imagesColumn,
		wide("Selector", "string", appsv1.ReplicaSetSpec{}.SwaggerDoc()["selector"]),
	}, func(rs *appsv1.ReplicaSet, now time.Time) []any {
		names, images := containerCells(rs.Spec.Template.Spec.Containers)
		return []any{
			rs.Name,
			int64(replicas(rs.Spec.Replicas)),
			int64(rs.Status.Replicas),
			int64(rs.Status.ReadyReplicas),
			age(rs.CreationTimestamp, now),
			names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
		}
	}))
	register("apps", "StatefulSet", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Ready", "string", "Number of the pod with ready state"),
		ageColumn,
		containersColumn,
		imagesColumn,
	}, func(s *appsv1.StatefulSet, now time.Time) []any {
		names, images := containerCells(s.Spec.Template.Spec.Containers)
		return []any{
			s.Name,
			fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, replicas(s.Spec.Replicas)),
			age(s.CreationTimestamp, now),
			names, images,
		}
	}))
	register("apps", "DaemonSet", typed(daemonSetColumns(), func(ds *appsv1.DaemonSet, now time.Time) []any {
		st := ds.Status
		names, images := containerCells(ds.Spec.Template.Spec.Containers)
		return []any{
			ds.Name,
			int64(st.DesiredNumberScheduled),
			int64(st.CurrentNumberScheduled),
			int64(st.NumberReady),
			int64(st.UpdatedNumberScheduled),
			int64(st.NumberAvailable),
			labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
			age(ds.CreationTimestamp, now),
			names, images, metav1.FormatLabelSelector(ds.Spec.Selector),
		}
	}))
	register("apps", "ControllerRevision", typed([]metav1.TableColumnDefinition{
		nameColumn,
		col("Controller", "string", "Controller of the object"),
		col("Revision", "string", appsv1.ControllerRevision{}.SwaggerDoc()["revision"]),
		ageColumn,
	}, func(cr *appsv1.ControllerRevision, now time.Time) []any {
		controller := "<none>"
		if ref := metav1.GetControllerOf(cr); ref != nil {
			controller = ref.Name
			// "statefulset.apps/web": the kind qualified by its group, as
			// kubectl names resources.
			if gv, err := schema.ParseGroupVersion(ref.APIVersion); err == nil && ref.Kind != "" {
				controller = strings.ToLower(gv.WithKind(ref.Kind).GroupKind().String()) + "/" + ref.Name
			}
		}
		return []any{cr.Name, controller, cr.Revision, age(cr.CreationTimestamp, now)}
	}))
}

func daemonSetColumns() []metav1.TableColumnDefinition {
	st := appsv1.DaemonSetStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn,
		col("Desired", "integer", st["desiredNumberScheduled"]),
		col("Current", "integer", st["currentNumberScheduled"]),
		col("Ready", "integer", st["numberReady"]),
		col("Up-to-date", "integer", st["updatedNumberScheduled"]),
		col("Available", "integer", st["numberAvailable"]),
		col("Node Selector", "string", corev1.PodSpec{}.SwaggerDoc()["nodeSelector"]),
		ageColumn,
		containersColumn,
		imagesColumn,
		wide("Selector", "string", appsv1.DaemonSetSpec{}.SwaggerDoc()["selector"]),
	}
}

// replicas is spec.replicas, or 1, its API default, when unset.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// containerCells lays out the CONTAINERS and IMAGES cells of -o wide: the
// names and the images of the containers, comma separated.
func containerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	i := make([]string, len(containers))
	for k, c := range containers {
		n[k], i[k] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}
