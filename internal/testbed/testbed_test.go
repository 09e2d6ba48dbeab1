package testbed

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listenIn opens a TCP listener inside the host's namespace, accepting and
// closing connections until the test ends.
func listenIn(t *testing.T, h *Host, port string) {
	t.Helper()
	got := make(chan error, 1)
	var ln net.Listener
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in h's namespace
		if err := enter(filepath.Join(netnsDir, h.NS)); err != nil {
			got <- err
			return
		}
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(h.Addr.String(), port))
		got <- err
	}()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func reach(dial func(context.Context, string, string) (net.Conn, error), addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// The bed's links: the hub reaches every host; Isolate cuts one host off
// everyone and Heal restores it; Cut drops only the path between two hosts;
// nothing of it shows in the root namespace, and Cleanup removes it all.
func TestBedLinks(t *testing.T) {
	var hub string
	var nss []string
	t.Run("bed", func(t *testing.T) {
		b := New(t)
		a, c := b.AddHost("a"), b.AddHost("c")
		hub, nss = b.hub, []string{a.NS, c.NS}
		listenIn(t, a, "7000")
		listenIn(t, c, "7000")
		aAddr, cAddr := a.Addr.String()+":7000", c.Addr.String()+":7000"
		mustReach := func(what string, dial func(context.Context, string, string) (net.Conn, error), addr string) {
			t.Helper()
			if err := reach(dial, addr); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		mustNot := func(what string, dial func(context.Context, string, string) (net.Conn, error), addr string) {
			t.Helper()
			if err := reach(dial, addr); err == nil {
				t.Fatalf("%s: reached through a cut", what)
			}
		}
		mustReach("hub to a", b.Dial, aAddr)
		mustReach("hub to c", b.Dial, cAddr)
		mustReach("c to a", c.Dial, aAddr)
		// The root namespace has none of the bed's addresses or links (the
		// test does not dial from it: its routes may lead off the machine).
		if out, err := exec.Command("ip", "-o", "addr").CombinedOutput(); err != nil || strings.Contains(string(out), "10.251.") {
			t.Fatalf("the root namespace's addresses (%v):\n%s", err, out)
		}
		if out, err := exec.Command("ip", "-o", "link").CombinedOutput(); err != nil || strings.Contains(string(out), " "+bridge+":") {
			t.Fatalf("the root namespace's links (%v):\n%s", err, out)
		}

		if err := a.Isolate(); err != nil {
			t.Fatal(err)
		}
		mustNot("hub to isolated a", b.Dial, aAddr)
		mustNot("c to isolated a", c.Dial, aAddr)
		mustReach("hub to c while a is isolated", b.Dial, cAddr)
		if err := a.Heal(); err != nil {
			t.Fatal(err)
		}
		// The bridge port forwards again after its state settles (no STP:
		// at once, but bounded polling keeps this robust).
		pollReach(t, b.Dial, aAddr)

		if err := b.Cut(a, c); err != nil {
			t.Fatal(err)
		}
		mustNot("c to a through a cut", c.Dial, aAddr)
		mustNot("a to c through a cut", a.Dial, cAddr)
		mustReach("hub to a beside a cut", b.Dial, aAddr)
		mustReach("hub to c beside a cut", b.Dial, cAddr)
		if err := b.HealCut(a, c); err != nil {
			t.Fatal(err)
		}
		mustReach("c to a after the cut healed", c.Dial, aAddr)

		if err := b.Partition(a); err != nil {
			t.Fatal(err)
		}
		mustNot("c to a across a partition", c.Dial, aAddr)
		if err := b.HealAll(); err != nil {
			t.Fatal(err)
		}
		mustReach("c to a after HealAll", c.Dial, aAddr)
	})
	for _, ns := range append(nss, hub) {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); err == nil {
			t.Errorf("namespace %s is left after Cleanup", ns)
		}
	}
}

func pollReach(t *testing.T, dial func(context.Context, string, string) (net.Conn, error), addr string) {
	t.Helper()
	var err error
	for range 50 {
		if err = reach(dial, addr); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s unreachable after healing: %v", addr, err)
}

// Processes run inside their host's namespace, under their own PID; Kill
// ends them by PID, Restart starts them again; Cleanup stops them.
func TestBedProcesses(t *testing.T) {
	var pids []int
	t.Run("bed", func(t *testing.T) {
		b := New(t)
		h := b.AddHost("a")
		want, err := os.Readlink(filepath.Join("/proc/self/ns/net"))
		if err != nil {
			t.Skip("no /proc/self/ns/net: ", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p, err := h.Start(ctx, "sleeper", "up", "sh", "-c", "echo up; exec sleep 300")
		if err != nil {
			t.Fatal(err)
		}
		first := p.PID()
		ns, err := os.Readlink("/proc/" + itoa(first) + "/ns/net")
		if err != nil || ns == want {
			t.Fatalf("the process's namespace is %q (%v), the test's %q", ns, err, want)
		}
		if cmdline, _ := os.ReadFile("/proc/" + itoa(first) + "/cmdline"); strings.HasPrefix(string(cmdline), "ip\x00") {
			t.Fatalf("pid %d is %q, not the started program", first, cmdline)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if p.Running() {
			t.Fatal("running after Kill")
		}
		if err := p.Restart(ctx, "up"); err != nil {
			t.Fatal(err)
		}
		if p.PID() == first || !p.Running() {
			t.Fatalf("restart: pid %d (was %d), running %v", p.PID(), first, p.Running())
		}
		// A process started from a thread that then ends (as the dialers'
		// threads do, staying in another namespace) lives on: its
		// parent-death signal is tied to the thread that forked it.
		var other *Proc
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			var err error
			other, err = h.Start(ctx, "other", "up", "sh", "-c", "echo up; exec sleep 300")
			if err == nil {
				err = enter(filepath.Join(netnsDir, b.hub))
			}
			started <- err
		}()
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // the thread's exit and a signal are not synchronous with the channel
		if !other.Running() {
			t.Fatalf("the process died with the thread that started it:\n%s", other.Tail())
		}
		if !strings.Contains(p.Tail(), "signal: killed") {
			t.Errorf("the log does not record the kill:\n%s", p.Tail())
		}
		pids = []int{first, p.PID()}
	})
	for _, pid := range pids {
		if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
			t.Errorf("pid %d is left after Cleanup", pid)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
