package agent

import "testing"

// TestKeepsAny: a local-volumes entry stays if it is a kept volume or
// holds one further down; siblings with a common prefix do not count.
func TestKeepsAny(t *testing.T) {
	keep := map[string]bool{"/d/local-volumes/pvc-1": true, "/d/local-volumes/static/a": true}
	for dir, want := range map[string]bool{
		"/d/local-volumes/pvc-1":  true,
		"/d/local-volumes/static": true,
		"/d/local-volumes/pvc-10": false,
		"/d/local-volumes/pvc-2":  false,
	} {
		if got := keepsAny(dir, keep); got != want {
			t.Errorf("keepsAny(%s) = %v, want %v", dir, got, want)
		}
	}
}
