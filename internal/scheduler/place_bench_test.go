package scheduler

import (
	"fmt"
	"testing"
)

// BenchmarkPlace is one decision over many nodes, each holding pods: the
// cost the scheduler's single worker pays per pod.
func BenchmarkPlace(b *testing.B) {
	for _, nodes := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			m := cluster(nodes, 3)
			for _, n := range m {
				for range 50 {
					n.place(labelled(map[string]string{"app": "web"}))
				}
			}
			pod := testPod("100m", "128Mi")
			b.ResetTimer()
			for range b.N {
				if got, msg := placeWith(pod, nil, m); got == "" {
					b.Fatal(msg)
				}
			}
		})
	}
}
