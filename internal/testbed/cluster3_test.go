package testbed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testbed"
)

// startThree starts three servers on three hosts: the first alone, the
// others joining it with `--join` and its token file. It skips the test
// where the skiff binary has no --join yet.
func startThree(t *testing.T, bed *testbed.Bed) []*server {
	t.Helper()
	skipShort(t)
	if !hasFlag(t, "server", "join") {
		t.Skip("skiff server has no --join flag yet (issue 20 item 1): three servers cannot be started from the command line")
	}
	hosts := []*testbed.Host{bed.AddHost("s0"), bed.AddHost("s1"), bed.AddHost("s2")}
	servers := []*server{startServer(t, bed, hosts[0], "s0")}
	token := filepath.Join(servers[0].dir, "token")
	for i := 1; i < 3; i++ {
		name := fmt.Sprintf("s%d", i)
		s := startServer(t, bed, hosts[i], name, "--join", servers[0].api, "--token-file", token)
		// A member that joined restarts from its data directory alone.
		s.proc.SetArgs(serverArgs(hosts[i], name, s.dir)...)
		servers = append(servers, s)
	}
	for _, s := range servers {
		cs, _ := s.client(t, 10*time.Second)
		if err := poll(90*time.Second, 500*time.Millisecond, func() error {
			ctx, cancel := ctxT(10 * time.Second)
			defer cancel()
			nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			ready := 0
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready < 3 {
				return fmt.Errorf("%d of %d nodes Ready, want 3", ready, len(nodes.Items))
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", s.proc.Name, err)
		}
	}
	return servers
}

// leader is the index of the server whose /metrics says it is the raft
// leader, or -1 if none answers so.
func leader(t *testing.T, servers []*server) int {
	for i, s := range servers {
		if !s.proc.Running() {
			continue
		}
		cs := s.metricsClient(t)
		ctx, cancel := ctxT(2 * time.Second)
		body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		cancel()
		if err == nil && strings.Contains(string(body), "\nskiff_raft_leader 1") {
			return i
		}
	}
	return -1
}

// waitLeader waits (bounded) until one running server says it leads.
func waitLeader(t *testing.T, servers []*server) int {
	t.Helper()
	l := -1
	if err := poll(30*time.Second, 200*time.Millisecond, func() error {
		if l = leader(t, servers); l < 0 {
			return fmt.Errorf("no leader")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// Three servers joined from the command line, clients writing and reading
// through all three, and a bounded nemesis: kill -9 of the leader and a
// restart, a server's link cut, a server partitioned from the other two
// (the hub still reaches it, so its clients keep asking it). No
// acknowledged write is lost and the history is linearizable.
func TestLinearizableThreeServers(t *testing.T) {
	bed := testbed.New(t)
	servers := startThree(t, bed)
	hosts := bed.Hosts()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	faults := func(r int) fault {
		switch r % 3 {
		case 0:
			return fault{"kill -9 the leader and restart it", func() error {
				l := waitLeader(t, servers)
				if err := servers[l].proc.Kill(); err != nil {
					return err
				}
				killed := time.Now()
				next := waitLeader(t, servers)
				t.Logf("killed leader s%d; s%d leads %v later", l, next, time.Since(killed).Round(time.Millisecond))
				time.Sleep(time.Second)
				return servers[l].restart()
			}}
		case 1:
			v := rng.IntN(3)
			return fault{fmt.Sprintf("cut s%d's link for 4s", v), func() error {
				if err := hosts[v].Isolate(); err != nil {
					return err
				}
				time.Sleep(4 * time.Second)
				return hosts[v].Heal()
			}}
		default:
			return fault{"partition the leader from the other servers for 5s", func() error {
				l := waitLeader(t, servers)
				if err := bed.Partition(hosts[l]); err != nil {
					return err
				}
				time.Sleep(5 * time.Second)
				return bed.HealAll()
			}}
		}
	}
	checkLinearizable(t, bed, servers, 6, faults, 6)
}

// One of three servers partitioned from the other two (the leader, the
// harder case): the majority elects a leader and stays writable; every
// write through the minority fails or times out, never succeeds; after the
// heal the minority serves every write the majority acknowledged.
func TestPartitionMinorityRefusesWrites(t *testing.T) {
	bed := testbed.New(t)
	servers := startThree(t, bed)
	hosts := bed.Hosts()
	l := waitLeader(t, servers)
	minority := servers[l]
	var majority []*server
	for i, s := range servers {
		if i != l {
			majority = append(majority, s)
		}
	}
	if err := bed.Partition(hosts[l]); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("partitioned %s (the leader) from the other two", minority.proc.Name)

	create := func(cs kubernetes.Interface, name string, timeout time.Duration) error {
		ctx, cancel := ctxT(timeout)
		defer cancel()
		_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": name}}, metav1.CreateOptions{})
		return err
	}
	var acked []string
	writable := time.Duration(0)
	for i, s := range majority {
		cs, _ := s.client(t, 5*time.Second)
		n := 0
		if err := poll(60*time.Second, 200*time.Millisecond, func() error {
			n++
			name := fmt.Sprintf("major-%d-%d", i, n)
			// Short attempts, so the figure printed below says when the
			// majority took writes again rather than how long one stuck
			// request waited.
			if err := create(cs, name, time.Second); err != nil {
				return err
			}
			acked = append(acked, name)
			return nil
		}); err != nil {
			t.Fatalf("the majority's %s is not writable: %v", s.proc.Name, err)
		}
		if i == 0 {
			writable = time.Since(cutAt)
		}
		for j := range 5 { // a few more, known acknowledged
			name := fmt.Sprintf("major-%d-more-%d", i, j)
			if err := create(cs, name, 5*time.Second); err != nil {
				t.Fatalf("the majority's %s: %v", s.proc.Name, err)
			}
			acked = append(acked, name)
		}
	}
	t.Logf("the majority took writes %v after the partition", writable.Round(time.Millisecond))

	mcs, _ := minority.client(t, 5*time.Second)
	var refusals []string
	for j := range 5 {
		name := fmt.Sprintf("minor-%d", j)
		err := create(mcs, name, 5*time.Second)
		if err == nil {
			t.Errorf("the minority %s acknowledged write %s", minority.proc.Name, name)
			continue
		}
		refusals = append(refusals, errKind(err))
	}
	t.Logf("the minority's answers to 5 writes: %v", refusals)

	if err := bed.HealAll(); err != nil {
		t.Fatal(err)
	}
	for _, name := range acked {
		if err := poll(60*time.Second, 250*time.Millisecond, func() error {
			ctx, cancel := ctxT(5 * time.Second)
			defer cancel()
			_, err := mcs.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			return err
		}); err != nil {
			t.Fatalf("after the heal, %s does not serve %s, acknowledged by the majority: %v", minority.proc.Name, name, err)
		}
	}
	for j := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := mcs.CoreV1().ConfigMaps("default").Get(ctx, fmt.Sprintf("minor-%d", j), metav1.GetOptions{})
		cancel()
		if err == nil {
			t.Logf("minor-%d, refused to its client, exists after the heal (allowed for an unknown outcome)", j)
		}
	}
}
