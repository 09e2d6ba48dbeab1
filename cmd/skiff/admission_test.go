package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventually polls f every 200 ms for at most d.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const pendingPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME"},
	"spec":{"nodeSelector":{"nowhere":"true"},"containers":[{"name":"c","image":"example.com/a:1"}]}}`

// TestKubectlAdmissionAndAudit: ResourceQuota, PodSecurity and the audit
// log through real kubectl against a real server.
func TestKubectlAdmissionAndAudit(t *testing.T) {
	// An audit log at Request level, rotated at 1 MB.
	auditLog := filepath.Join(t.TempDir(), "audit", "audit.log")
	c := startOwnServer(t, "admission-test", "127.136", "--audit-log", auditLog, "--audit-log-maxsize", "1", "--audit-level", "Request")

	t.Run("ResourceQuota", func(t *testing.T) {
		c := *c
		c.t = t
		c.ok("", "create", "namespace", "quota-e2e")
		c.ok("", "create", "quota", "q", "-n", "quota-e2e", "--hard=pods=2,count/configmaps=10")
		used := func(want string) func() error {
			return func() error {
				if got := c.ok("", "get", "quota", "q", "-n", "quota-e2e", "-o", "jsonpath={.status.used.pods}"); got != want {
					return fmt.Errorf("status.used.pods = %q, want %q", got, want)
				}
				return nil
			}
		}
		eventually(t, 30*time.Second, used("0"))
		for _, name := range []string{"a", "b"} {
			c.ok(strings.ReplaceAll(pendingPod, "NAME", name), "create", "-n", "quota-e2e", "-f", "-")
		}
		contains(t, "third pod", c.fails(strings.ReplaceAll(pendingPod, "NAME", "c"), "create", "-n", "quota-e2e", "-f", "-"),
			`pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`)
		desc := c.ok("", "describe", "quota", "q", "-n", "quota-e2e")
		if !regexp.MustCompile(`(?m)^Resource\s+Used\s+Hard\n-+\s+-+\s+-+\n(.*\n)*pods\s+2\s+2$`).MatchString(strings.TrimSpace(desc)) {
			t.Fatalf("describe quota:\n%s", desc)
		}
		c.ok("", "delete", "pod", "a", "-n", "quota-e2e", "--wait=false")
		eventually(t, 60*time.Second, used("1"))
		c.ok(strings.ReplaceAll(pendingPod, "NAME", "c"), "create", "-n", "quota-e2e", "-f", "-")
	})

	t.Run("ObjectCounts", func(t *testing.T) {
		c := *c
		c.t = t
		c.ok("", "create", "namespace", "quota-count")
		c.ok("", "create", "quota", "apps", "-n", "quota-count", "--hard=count/deployments.apps=1")
		used := func(want string) func() error {
			return func() error {
				if got := c.ok("", "get", "quota", "apps", "-n", "quota-count", "-o", `jsonpath={.status.used.count/deployments\.apps}`); got != want {
					return fmt.Errorf("status.used[count/deployments.apps] = %q, want %q", got, want)
				}
				return nil
			}
		}
		eventually(t, 30*time.Second, used("0"))
		c.ok("", "create", "deployment", "one", "-n", "quota-count", "--image=example.com/a:1", "--replicas=0")
		contains(t, "second deployment", c.fails("", "create", "deployment", "two", "-n", "quota-count", "--image=example.com/a:1", "--replicas=0"),
			`deployments.apps "two" is forbidden: exceeded quota: apps, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`)
		// The controller counts Deployments through the dynamic client:
		// deleting one gives its share back.
		c.ok("", "delete", "deployment", "one", "-n", "quota-count")
		eventually(t, 60*time.Second, used("0"))
		c.ok("", "create", "deployment", "two", "-n", "quota-count", "--image=example.com/a:1", "--replicas=0")
	})

	t.Run("ConcurrentCreates", func(t *testing.T) {
		c := *c
		c.t = t
		c.ok("", "create", "namespace", "quota-race")
		c.ok("", "create", "quota", "five", "-n", "quota-race", "--hard=pods=5")
		eventually(t, 30*time.Second, func() error {
			if got := c.ok("", "get", "quota", "five", "-n", "quota-race", "-o", "jsonpath={.status.used.pods}"); got != "0" {
				return fmt.Errorf("status.used.pods = %q", got)
			}
			return nil
		})
		var wg sync.WaitGroup
		results := make([]result, 20)
		start := time.Now()
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = c.kubectl(strings.ReplaceAll(pendingPod, "NAME", fmt.Sprintf("p%d", i)), "create", "-n", "quota-race", "-f", "-")
			}()
		}
		wg.Wait()
		t.Logf("20 concurrent kubectl creates against pods=5 took %v", time.Since(start))
		ok := 0
		for _, r := range results {
			switch {
			case r.code == 0:
				ok++
			case !strings.Contains(r.err, "exceeded quota: five, requested: pods=1, used: pods=5, limited: pods=5"):
				t.Errorf("unexpected failure: %s", r.err)
			}
		}
		pods := strings.Fields(c.ok("", "get", "pods", "-n", "quota-race", "-o", "jsonpath={.items[*].metadata.name}"))
		if ok != 5 || len(pods) != 5 {
			t.Fatalf("%d creates succeeded and %d pods exist, want exactly 5", ok, len(pods))
		}
	})

	t.Run("PodSecurity", func(t *testing.T) {
		c := *c
		c.t = t
		privileged := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"root"},
			"spec":{"nodeSelector":{"nowhere":"true"},"containers":[{"name":"c","image":"example.com/a:1","securityContext":{"privileged":true}}]}}`
		c.ok("", "create", "namespace", "psa-locked")
		c.ok("", "label", "namespace", "psa-locked", "pod-security.kubernetes.io/enforce=restricted")
		contains(t, "privileged pod in a restricted namespace", c.fails(privileged, "create", "-n", "psa-locked", "-f", "-"),
			`pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true)`)
		c.ok("", "create", "namespace", "psa-warn")
		c.ok("", "label", "namespace", "psa-warn", "pod-security.kubernetes.io/warn=baseline")
		r := c.kubectl(privileged, "create", "-n", "psa-warn", "-f", "-")
		if r.code != 0 {
			t.Fatalf("warn level refused the pod: %s", r.err)
		}
		contains(t, "kubectl's warnings", r.err, `Warning: would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`)
	})

	t.Run("AuditLog", func(t *testing.T) {
		c := *c
		c.t = t
		c.ok("", "create", "namespace", "audit-e2e")
		c.ok("", "create", "secret", "generic", "pw", "-n", "audit-e2e", "--from-literal=password=hunter2-very-secret")
		c.ok("", "get", "secret", "pw", "-n", "audit-e2e", "-o", "yaml")
		c.ok("", "create", "configmap", "one", "-n", "audit-e2e", "--from-literal=k=v")
		c.ok("", "get", "configmap", "one", "-n", "audit-e2e")
		type event struct {
			Verb, Level, Stage string
			User               struct{ Username string }
			UserAgent          string
			ObjectRef          *struct{ Resource, Namespace, Name, APIVersion string }
			ResponseStatus     struct{ Code int }
			RequestObject      json.RawMessage
		}
		read := func() []event {
			var evs []event
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(auditLog), "*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "aHVudGVyMi") {
					t.Fatalf("a Secret's data is in the audit log %s", f)
				}
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					var ev event
					if err := json.Unmarshal([]byte(line), &ev); err != nil {
						t.Fatalf("audit line is not an Event: %v: %.200s", err, line)
					}
					evs = append(evs, ev)
				}
			}
			return evs
		}
		count := func(evs []event, verb, resource, name string) (n int, last event) {
			for _, ev := range evs {
				if ev.Verb == verb && ev.ObjectRef != nil && ev.ObjectRef.Resource == resource && ev.ObjectRef.Name == name &&
					ev.ObjectRef.Namespace == "audit-e2e" && strings.HasPrefix(ev.UserAgent, "kubectl") {
					n, last = n+1, ev
				}
			}
			return n, last
		}
		eventually(t, 20*time.Second, func() error {
			evs := read()
			for _, want := range [][3]string{{"create", "secrets", "pw"}, {"get", "secrets", "pw"}, {"create", "configmaps", "one"}, {"get", "configmaps", "one"}} {
				n, ev := count(evs, want[0], want[1], want[2])
				if n != 1 {
					return fmt.Errorf("%d events for kubectl %s %s/%s, want one", n, want[0], want[1], want[2])
				}
				if ev.User.Username != "system:admin" || ev.Stage != "ResponseComplete" || ev.ObjectRef.APIVersion != "v1" || ev.ResponseStatus.Code/100 != 2 {
					return fmt.Errorf("event for %v: %+v", want, ev)
				}
				wantLevel := "Request"
				if want[1] == "secrets" {
					wantLevel = "Metadata"
				}
				// A create's body is logged at Request level, a Secret's never.
				if ev.Level != wantLevel || (want[0] == "create" && want[1] != "secrets") != (len(ev.RequestObject) > 0) {
					return fmt.Errorf("event for %v: level %s, requestObject %s", want, ev.Level, ev.RequestObject)
				}
			}
			return nil
		})

		// Rotation: 60 ConfigMaps of 20 KB at Request level write well over
		// the 1 MB limit; the live file stays under it and one backup is kept.
		var list strings.Builder
		big := strings.Repeat("x", 20<<10)
		for i := range 60 {
			if i > 0 {
				list.WriteString("\n") // kubectl reads a stream of JSON objects
			}
			fmt.Fprintf(&list, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big-%d","namespace":"audit-e2e"},"data":{"k":"%s"}}`, i, big)
		}
		c.ok(list.String(), "create", "-f", "-")
		eventually(t, 20*time.Second, func() error {
			files, _ := filepath.Glob(filepath.Join(filepath.Dir(auditLog), "*"))
			st, err := os.Stat(auditLog)
			if err != nil {
				return err
			}
			if st.Size() > 1<<20 {
				t.Fatalf("audit log is %d bytes, over --audit-log-maxsize 1", st.Size())
			}
			if len(files) != 2 {
				return fmt.Errorf("%d files in the audit directory, want the log and one backup: %v", len(files), files)
			}
			return nil
		})
	})
}
