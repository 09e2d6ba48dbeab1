package engine

import "testing"

// Listeners keep the ports recorded in cluster.json: a port 0 on the
// recorded host, or no address at all, reuses the recorded one; anything
// else given is used as given.
func TestReuseAddr(t *testing.T) {
	for _, c := range []struct{ want, recorded, got string }{
		{"127.0.0.1:0", "", "127.0.0.1:0"},
		{"127.0.0.1:0", "127.0.0.1:7000", "127.0.0.1:7000"},
		{"", "127.0.0.1:7000", "127.0.0.1:7000"},
		{"127.0.0.2:0", "127.0.0.1:7000", "127.0.0.2:0"},       // another host: the user moved it
		{"127.0.0.1:7001", "127.0.0.1:7000", "127.0.0.1:7001"}, // a port given wins
	} {
		if got := reuseAddr(c.want, c.recorded); got != c.got {
			t.Errorf("reuseAddr(%q, %q) = %q, want %q", c.want, c.recorded, got, c.got)
		}
	}
}
