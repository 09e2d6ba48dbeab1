//go:build linux

package cpulimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Measured reports whether threads' CPU clocks can be read here, so that a
// Meter measures.
const Measured = true

func gettid() int { return unix.Gettid() }

func isMainThread() bool { return unix.Gettid() == unix.Getpid() }

func selfClock() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// threadClock reads another thread's CPU clock. The clock ID is what glibc's
// pthread_getcpuclockid makes (the kernel's MAKE_THREAD_CPUCLOCK(tid,
// CPUCLOCK_SCHED)): the kernel answers it for threads of the calling
// process only.
func threadClock(tid int) (time.Duration, error) {
	const cpuclockSched, cpuclockPerThread = 2, 4
	clk := int32(^int32(tid))<<3 | cpuclockSched | cpuclockPerThread
	var ts unix.Timespec
	if err := unix.ClockGettime(clk, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// Periods of the CFS bandwidth control. The kernel refuses quotas under
// 1 ms and periods over 1 s.
const (
	// DefaultPeriod is short because a throttled thread stops where it
	// stands, possibly holding a Go scheduler's P or delaying a
	// stop-the-world (Go waits for every running goroutine to reach a safe
	// point): the longest a throttled thread waits is the period minus its
	// quota.
	DefaultPeriod = 10 * time.Millisecond
	minQuota      = time.Millisecond
	maxPeriod     = time.Second
)

// Controller makes CPU groups in a cgroup directory of its own,
// `skiff-<pid>-<n>` under the process's own cgroup of the cgroup v1 cpu
// controller, and removes them on Close.
type Controller struct {
	dir      string
	addProcs bool

	mu     sync.Mutex
	next   int
	groups map[*Group]struct{}
	closed bool
}

var controllers atomic.Int64 // numbers the controllers of this process

// NewController finds the cgroup v1 cpu controller, makes the Controller's
// directory and checks, with a thread of its own, that a thread can be
// moved into a limited group. Its error says why CPU limits cannot be held
// on this host (no controller, no privilege...); the caller degrades.
func NewController(opts Options) (*Controller, error) {
	parent, err := ownCPUCgroup()
	if err != nil {
		return nil, err
	}
	sweepStale(parent)
	dir := filepath.Join(parent, fmt.Sprintf("skiff-%d-%d", os.Getpid(), controllers.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS) {
			return nil, fmt.Errorf("no permission to make cgroups under %s (the engine needs root, or a cgroup delegated to it): %w", parent, err)
		}
		return nil, fmt.Errorf("cannot make a cgroup under %s: %w", parent, err)
	}
	c := &Controller{dir: dir, addProcs: !opts.KeepGOMAXPROCS, groups: map[*Group]struct{}{}}
	if _, err := os.Stat(filepath.Join(dir, "cpu.cfs_quota_us")); err != nil {
		c.Close()
		return nil, fmt.Errorf("the kernel has no CFS bandwidth control (cpu.cfs_quota_us): %w", err)
	}
	// A real move of a thread, the one thing that must work, with a limit
	// of a whole core (this probe must not wait on itself).
	g, err := c.NewGroup(1000)
	if err == nil {
		var t *Thread
		if t, err = StartThread(g, &Meter{}); err == nil {
			t.Stop()
		}
		if cerr := g.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot move a thread into a cgroup under %s: %w", parent, err)
	}
	return c, nil
}

// Dir is the Controller's cgroup directory.
func (c *Controller) Dir() string { return c.dir }

// ownCPUCgroup is the directory of the process's cgroup in the v1 cpu
// hierarchy.
func ownCPUCgroup() (string, error) {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	var mountPoint, mountRoot string
	v2 := ""
	for _, line := range strings.Split(string(mounts), "\n") {
		// id parent dev root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 3 {
			continue
		}
		switch p[0] {
		case "cgroup":
			if hasToken(p[2], "cpu") && mountPoint == "" {
				mountRoot, mountPoint = f[3], unescapeMount(f[4])
			}
		case "cgroup2":
			if b, err := os.ReadFile(filepath.Join(unescapeMount(f[4]), "cgroup.controllers")); err == nil && hasWord(string(b), "cpu") {
				v2 = unescapeMount(f[4])
			}
		}
	}
	if mountPoint == "" {
		if v2 != "" {
			// Under cgroup v2 a thread may leave its process's cgroup only
			// inside a threaded subtree, which would mean moving the whole
			// engine process into one: not done (yet).
			return "", fmt.Errorf("the cpu controller is on cgroup v2 (%s), where limiting single threads needs the engine's process in a threaded subtree; not supported yet", v2)
		}
		return "", errors.New("no cgroup cpu controller is mounted")
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("reading the process's cgroups: %w", err)
	}
	for _, line := range strings.Split(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && hasToken(parts[1], "cpu") {
			rel, ok := strings.CutPrefix(parts[2], strings.TrimSuffix(mountRoot, "/"))
			if !ok {
				return "", fmt.Errorf("the process's cpu cgroup %s is outside the mount of %s at %s", parts[2], mountRoot, mountPoint)
			}
			return filepath.Join(mountPoint, rel), nil
		}
	}
	return "", errors.New("the process is in no cgroup of the cpu controller")
}

func hasToken(list, tok string) bool {
	for _, t := range strings.Split(list, ",") {
		if t == tok {
			return true
		}
	}
	return false
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sweepStale removes the directories of controllers whose process is gone
// (it crashed before Close): their groups hold no thread any more.
func sweepStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, "skiff-*-*"))
	for _, d := range dirs {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), "skiff-"), "-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		removeTree(d)
	}
}

// removeTree removes an empty cgroup directory and its child groups. (A
// cgroup directory is removed with rmdir: its files are the kernel's.)
func removeTree(dir string) error {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			removeTree(filepath.Join(dir, e.Name()))
		}
	}
	return unix.Rmdir(dir)
}

// Close removes the groups still open and the Controller's directory.
func (c *Controller) Close() error {
	c.mu.Lock()
	c.closed = true
	groups := c.groups
	c.groups = nil
	c.mu.Unlock()
	var errs []error
	for g := range groups {
		if err := rmdirRetry(g.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := rmdirRetry(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Group is one workload's CPU allowance: a cgroup with a CFS quota that the
// workload's threads join.
type Group struct {
	c      *Controller
	dir    string
	tasks  string
	Millis int64         // the limit, in thousandths of a core
	Period time.Duration // the CFS period; the quota is Millis/1000 of it
}

// NewGroup makes a group limited to millis thousandths of a core (100 is
// limits.cpu: 100m).
func (c *Controller) NewGroup(millis int64) (*Group, error) {
	if millis <= 0 {
		return nil, fmt.Errorf("cpulimit: limit %dm is not positive", millis)
	}
	period := DefaultPeriod
	if q := period * time.Duration(millis) / 1000; q < minQuota {
		// Under 100m a 10 ms period would need a quota under the
		// kernel's 1 ms minimum: lengthen the period instead.
		period = min(maxPeriod, minQuota*1000/time.Duration(millis))
	}
	quota := max(minQuota, period*time.Duration(millis)/1000)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("cpulimit: controller closed")
	}
	c.next++
	dir := filepath.Join(c.dir, strconv.Itoa(c.next))
	c.mu.Unlock()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cpulimit: make cgroup: %w", err)
	}
	g := &Group{c: c, dir: dir, tasks: filepath.Join(dir, "tasks"), Millis: millis, Period: period}
	if err := writeFile(filepath.Join(dir, "cpu.cfs_period_us"), period.Microseconds()); err != nil {
		unix.Rmdir(dir)
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "cpu.cfs_quota_us"), quota.Microseconds()); err != nil {
		// The parent's own quota may be smaller (v1 checks the hierarchy).
		unix.Rmdir(dir)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		unix.Rmdir(dir)
		return nil, errors.New("cpulimit: controller closed")
	}
	c.groups[g] = struct{}{}
	return g, nil
}

func writeFile(path string, v int64) error {
	if err := os.WriteFile(path, []byte(strconv.FormatInt(v, 10)), 0); err != nil {
		return fmt.Errorf("cpulimit: %w", err)
	}
	return nil
}

func (g *Group) addsProcs() bool { return g.c.addProcs }

// join moves the calling thread, which must be locked to its goroutine and
// must not go back to the Go scheduler, into g.
func (g *Group) join() error {
	return writeFile(g.tasks, int64(unix.Gettid()))
}

// Dir is the group's cgroup directory.
func (g *Group) Dir() string { return g.dir }

// Stats are the group's throttling counters (cgroup v1 cpu.stat).
type Stats struct {
	Periods, Throttled int64         // CFS periods with activity, and those that ran out of quota
	ThrottledTime      time.Duration // how long threads of the group waited for quota
}

// Stats reads the group's cpu.stat.
func (g *Group) Stats() (Stats, error) {
	f, err := os.Open(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return Stats{}, fmt.Errorf("cpulimit: %w", err)
	}
	defer f.Close()
	var st Stats
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "nr_periods":
			st.Periods = n
		case "nr_throttled":
			st.Throttled = n
		case "throttled_time":
			st.ThrottledTime = time.Duration(n)
		}
	}
	return st, sc.Err()
}

// Close removes the group, once the threads that were in it have ended
// (Thread.Stop returns as the thread starts ending, so this may wait a
// little). A group that cannot be removed yet (a thread still in a call)
// is tried again by the Controller's Close.
func (g *Group) Close() error {
	err := rmdirRetry(g.dir)
	if err == nil {
		g.c.mu.Lock()
		delete(g.c.groups, g)
		g.c.mu.Unlock()
	}
	return err
}

// rmdirRetry removes a cgroup directory, waiting up to 2 s for threads
// that are still ending to leave it (EBUSY).
func rmdirRetry(dir string) error {
	deadline := time.Now().Add(2 * time.Second)
	wait := 100 * time.Microsecond
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cpulimit: remove cgroup %s: %w", dir, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}
