package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/node/agent/appservices"
	"github.com/skiffhq/skiff/internal/node/agent/prober"
	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// container is one container of a pod and its restart loop.
type container struct {
	w    *podWorker
	spec corev1.Container
	init bool
	// ephemeral: one of kubectl debug's, run once and never restarted
	// (ephemeral.go).
	ephemeral bool
	done      bool // an ephemeral container was started (guarded by w.mu)

	// set by the worker before the loop starts
	volumes map[string]string
	quotas  map[string]skiffrt.DiskQuota // the emptyDirs' (storage.go)

	mu       sync.Mutex
	status   corev1.ContainerStatus
	img      skiffrt.Image
	pulled   bool
	env      []string // of the current start, for exec
	mounts   []skiffrt.Mount
	current  skiffrt.ContainerSpec // the current start's, for exec
	logPath  string                // the current start's log
	prevLog  string                // the start before it
	running  chan struct{}         // closed when the current start ends
	attempts int                   // starts so far in this worker, for container IDs
	cpu      containerCPU          // CPU time and the CPU limit warning (cpu.go)
	proc     skiffrt.Process       // the current start's, while it runs

	attach *attachHub // attached clients and the stdin pipe (attach.go)
}

// memoryBytes is the memory the container's process holds now, when its
// runtime says (skiffrt.MemoryUser); 0 when it is not running.
func (c *container) memoryBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mu, ok := c.proc.(skiffrt.MemoryUser); ok {
		return mu.MemoryBytes()
	}
	return 0
}

func newContainer(w *podWorker, spec corev1.Container, init bool, prev *corev1.ContainerStatus) *container {
	c := &container{w: w, spec: spec, init: init, running: closedChan(), attach: newAttachHub()}
	c.status = corev1.ContainerStatus{Name: spec.Name, Image: spec.Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	if prev != nil {
		// The engine restarted: the count goes on, and a container that was
		// running counts this start as a restart, as a rebooted node's
		// kubelet does.
		c.status.RestartCount = prev.RestartCount
		c.status.LastTerminationState = prev.LastTerminationState
		if prev.State.Running != nil || prev.State.Terminated != nil {
			c.status.RestartCount++
			if prev.State.Terminated != nil {
				c.status.LastTerminationState = corev1.ContainerState{Terminated: prev.State.Terminated}
			}
		}
	}
	return c
}

func closedChan() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func (c *container) fieldPath() string {
	if c.ephemeral {
		return "spec.ephemeralContainers{" + c.spec.Name + "}"
	}
	if c.init {
		return "spec.initContainers{" + c.spec.Name + "}"
	}
	return "spec.containers{" + c.spec.Name + "}"
}

func (c *container) event(typ, reason, msg string) { c.w.event(c.fieldPath(), typ, reason, msg) }

func (c *container) snapshot() corev1.ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.status.DeepCopy()
}

func (c *container) setStatus(fn func(s *corev1.ContainerStatus)) {
	c.mu.Lock()
	fn(&c.status)
	c.mu.Unlock()
	c.w.report()
}

func (c *container) setWaiting(reason, msg string) {
	c.setStatus(func(s *corev1.ContainerStatus) {
		s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
		s.Ready = false
		s.Started = new(bool)
	})
}

// sleep waits d or until ctx ends; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// pull makes the container's image available, reporting ErrImagePull and
// then ImagePullBackOff while it fails, with Kubernetes' back-off.
func (c *container) pull(ctx context.Context) bool {
	a := c.w.a
	policy := c.spec.ImagePullPolicy
	for attempt := 0; ctx.Err() == nil; attempt++ {
		secrets, err := c.pullSecrets(ctx)
		if err == nil {
			c.event(corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.spec.Image))
			start := time.Now()
			var img skiffrt.Image
			img, err = a.cfg.Runtime.Pull(ctx, c.spec.Image, policy, secrets)
			if err == nil {
				if img.Pulled {
					c.event(corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s. Image size: %d bytes.",
						c.spec.Image, time.Since(start).Round(time.Millisecond), img.Size))
				} else {
					c.event(corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.spec.Image))
				}
				c.mu.Lock()
				c.img, c.pulled = img, true
				c.status.ImageID = img.ID
				c.mu.Unlock()
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
		reason := "ErrImagePull"
		if errors.Is(err, skiffrt.ErrImageNotPresent) {
			reason = "ErrImageNeverPull"
		}
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.spec.Image, err)
		c.event(corev1.EventTypeWarning, "Failed", msg)
		c.event(corev1.EventTypeWarning, "Failed", "Error: "+reason)
		c.setWaiting(reason, msg)
		delay := a.backoff(attempt + 1)
		if !sleep(ctx, min(delay, time.Second)) {
			return false
		}
		c.event(corev1.EventTypeNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", c.spec.Image))
		c.setWaiting("ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: %v", c.spec.Image, err))
		if !sleep(ctx, delay-min(delay, time.Second)) {
			return false
		}
	}
	return false
}

func (c *container) pullSecrets(ctx context.Context) ([]corev1.Secret, error) {
	c.w.mu.Lock()
	pod := c.w.pod
	refs := pod.Spec.ImagePullSecrets
	ns := pod.Namespace
	c.w.mu.Unlock()
	objs := c.w.a.objectsFor(ns)
	var out []corev1.Secret
	for _, r := range refs {
		s, err := objs.Secret(ctx, r.Name)
		if errors.Is(err, errObjectNotFound) {
			continue // Kubernetes pulls without a missing pull secret
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, nil
}

// prepare resolves what one start of the container needs: argv, env and
// mounts.
func (c *container) prepare(ctx context.Context) (skiffrt.ContainerSpec, error) {
	w := c.w
	w.mu.Lock()
	pod := w.pod.DeepCopy()
	ip, etc, dns := w.ip, w.etcDir, w.dns
	w.mu.Unlock()
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	pod.Status.HostIP = w.a.hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: w.a.hostIP}}
	c.mu.Lock()
	img := c.img
	c.mu.Unlock()
	env, err := w.a.containerEnv(ctx, pod, &c.spec, img.Env, w.a.objectsFor(pod.Namespace))
	if err != nil {
		return skiffrt.ContainerSpec{}, err
	}
	mounts, err := volumes.MountsWithQuotas(pod, &c.spec, c.volumes, c.quotas)
	if err != nil {
		return skiffrt.ContainerSpec{}, err
	}
	vals := envMap(env)
	argv := containerArgv(&c.spec, img.Entrypoint, img.Cmd, vals)
	var ports []skiffrt.Port
	for _, p := range c.spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			ports = append(ports, skiffrt.Port{Name: p.Name, Port: p.ContainerPort})
		}
	}
	// The container's own limit, or the node's default (memory.go): the
	// pod's spec keeps what its user wrote.
	limit := w.a.containerMemoryLimit(&c.spec)
	hostname, fqdn := podHostname(pod, w.a.cfg.ClusterDomain)
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN && fqdn != "" {
		hostname = fqdn
	}
	// The pod's /etc (resolv.conf, hosts, hostname) goes last: the Wasm
	// runtime pre-opens it after the listeners (Mount.NodeFiles).
	mounts = withNodeFiles(mounts, etc)
	// Messaging and key-value, scoped to the pod's namespace
	// (appservices): the guest names subjects and keys of its own.
	app, err := appservices.New(w.a.cfg.Bus, pod.Namespace, w.a.log)
	if err != nil {
		return skiffrt.ContainerSpec{}, err
	}
	// pod is this start's own copy, with the pod's address: the firewall
	// may keep it.
	return skiffrt.ContainerSpec{Args: argv, Env: env, Mounts: mounts, Ports: ports, PodIP: ip,
		MemoryLimitBytes: limit, Hostname: hostname, CPULimitMillis: cpuLimitMillis(&c.spec), DNS: dns,
		Firewall: w.a.firewall(pod), App: app}, nil
}

// loop runs the container: pull, then start, wait, and restart as the
// restart policy and Kubernetes' back-off say, until the pod stops. For an
// init container it returns true once the container succeeded.
func (c *container) loop(ctx context.Context) bool {
	if !c.pull(ctx) {
		return false
	}
	a := c.w.a
	crashes := 0
	for ctx.Err() == nil {
		spec, err := c.prepare(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			c.event(corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
			c.setWaiting("CreateContainerConfigError", err.Error())
			crashes++
			if !sleep(ctx, min(a.backoff(crashes), 10*time.Second)) {
				return false
			}
			continue
		}
		exit, started, ranFor, stopped := c.runOnce(ctx, spec)
		if stopped || c.ephemeral {
			return false // an ephemeral container runs once, as in Kubernetes
		}
		if ranFor >= 10*time.Minute {
			crashes = 0 // it ran long enough: back-off starts over, as in the kubelet
		}
		c.w.mu.Lock()
		policy := c.w.pod.Spec.RestartPolicy
		c.w.mu.Unlock()
		restart := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && exit.Code != 0)
		if c.init {
			if exit.Code == 0 && started {
				return true
			}
			restart = policy != corev1.RestartPolicyNever
			if !restart {
				c.w.mu.Lock()
				c.w.failed = fmt.Sprintf("init container %s failed", c.spec.Name)
				c.w.mu.Unlock()
				c.w.report()
				return false
			}
		}
		if !restart {
			return false
		}
		crashes++
		delay := a.backoff(crashes - 1) // the first restart is immediate, as the kubelet's
		c.setStatus(func(s *corev1.ContainerStatus) {
			s.LastTerminationState = s.State
			s.RestartCount++
			if delay > 0 {
				msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.spec.Name, c.podDesc())
				s.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: msg}}
			}
			s.Ready, s.Started = false, new(bool)
		})
		if delay > 0 {
			c.event(corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.spec.Name, c.podDesc()))
			if !sleep(ctx, delay) {
				return false
			}
		}
	}
	return false
}

func (c *container) podDesc() string {
	ns, name := c.w.ref()
	return fmt.Sprintf("%s_%s(%s)", name, ns, c.w.uid)
}

// runOnce starts the container, watches it with its probes, and records
// how it ended. stopped is true when the pod is stopping.
func (c *container) runOnce(ctx context.Context, spec skiffrt.ContainerSpec) (exit skiffrt.ExitStatus, started bool, ranFor time.Duration, stopped bool) {
	a := c.w.a
	c.mu.Lock()
	restarts := c.status.RestartCount
	img := c.img
	c.mu.Unlock()
	// Named by the restart count, which grows with every start, also across
	// engine restarts: a container ID is never reused.
	spec.ID = fmt.Sprintf("%s-%s-%d", c.w.uid, c.spec.Name, restarts)
	logDir := filepath.Join(c.w.dir, "logs", c.spec.Name)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return skiffrt.ExitStatus{Code: 128, Reason: "StartError", Message: err.Error()}, false, 0, false
	}
	logPath := filepath.Join(logDir, strconv.Itoa(int(restarts))+".log")
	lf, err := c.openLog(logDir, logPath, int(restarts))
	if err != nil {
		return skiffrt.ExitStatus{Code: 128, Reason: "StartError", Message: err.Error()}, false, 0, false
	}
	defer lf.Close()
	stdout, stderr := lf.Stream("stdout"), lf.Stream("stderr")
	spec.Stdout, spec.Stderr = c.attach.output(stdout, false), c.attach.output(stderr, true)
	if c.spec.Stdin {
		// kubectl attach writes into it (attach.go); each start gets a new
		// one, open until stdinOnce closes it or the process ends.
		spec.Stdin = c.attach.newStdin()
	}
	// A process blocked reading its stdin pipe is out of the runtime's
	// reach: the pipe's end releases it, whenever the process ends or is
	// stopped.
	defer c.attach.closeStdin()

	spec.OnInstanceExit = c.instanceExited
	c.event(corev1.EventTypeNormal, "Created", "Created container "+c.spec.Name)
	running := make(chan struct{})
	c.mu.Lock()
	if c.logPath != "" && c.logPath != logPath {
		c.prevLog = c.logPath
	}
	c.logPath, c.running = logPath, running
	c.env, c.mounts = spec.Env, spec.Mounts
	c.current = spec
	c.mu.Unlock()
	defer close(running)

	begin := time.Now()
	proc, err := a.cfg.Runtime.Start(ctx, img, spec)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, skiffrt.ErrPortUnavailable) {
			msg = portUnavailableMessage(spec.PodIP, err)
		}
		c.event(corev1.EventTypeWarning, "Failed", "Error: "+msg)
		now := metav1.Now()
		exit = skiffrt.ExitStatus{Code: 128, Reason: "StartError", Message: msg}
		c.setStatus(func(s *corev1.ContainerStatus) {
			s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError",
				Message: msg, StartedAt: now, FinishedAt: now}}
		})
		return exit, false, 0, ctx.Err() != nil
	}
	c.event(corev1.EventTypeNormal, "Started", "Started container "+c.spec.Name)
	c.mu.Lock()
	c.proc = proc
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.proc = nil
		c.mu.Unlock()
	}()
	c.cpu.started(proc)
	c.warnCPULimit(spec.CPULimitMillis)
	containerID := a.cfg.Runtime.Name() + "://" + spec.ID
	startedAt := metav1.NewTime(begin)
	hasStartup := c.spec.StartupProbe != nil && !c.init
	c.setStatus(func(s *corev1.ContainerStatus) {
		s.ContainerID = containerID
		s.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
		s.Ready = !c.init && c.spec.ReadinessProbe == nil && !hasStartup
		s.Started = ptrTo(!hasStartup)
	})

	probeCtx, stopProbes := context.WithCancel(ctx)
	kill := make(chan string, 1) // a probe's reason to restart the container
	var probes sync.WaitGroup
	if !c.init {
		prober.Start(probeCtx, &probes, &c.spec, spec, probeTarget{c}, kill)
	}
	select {
	case <-proc.Done():
	case <-kill: // a probe said restart (its event says which)
		c.attach.closeStdin()
		proc.Stop(context.Background(), c.gracePeriod())
	case <-ctx.Done():
		stopped = true
		c.event(corev1.EventTypeNormal, "Killing", "Stopping container "+c.spec.Name)
		c.w.mu.Lock()
		grace := c.w.grace
		c.w.mu.Unlock()
		c.attach.closeStdin()
		proc.Stop(context.Background(), grace)
	}
	stopProbes()
	probes.Wait()
	exit = proc.Status()
	c.cpu.ended()
	stdout.Flush()
	stderr.Flush()
	ranFor = time.Since(begin)
	reason := exit.Reason
	switch {
	case reason == "Killed" && exit.Code != 0:
		reason = "Error" // what Kubernetes says for a killed container (137)
	case exit.Code != 0 && reason != "OOMKilled" && reason != "StartError":
		reason = "Error"
	}
	c.setStatus(func(s *corev1.ContainerStatus) {
		s.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: int32(exit.Code),
			Reason: reason, Message: exit.Message, StartedAt: startedAt, FinishedAt: metav1.Now(), ContainerID: containerID}}
		s.Ready = false
		s.Started = new(bool)
	})
	return exit, true, ranFor, stopped
}

// instanceExited records an instance of an SDK handler pool that failed and
// was replaced: to kubectl it is a container restart (restartCount, lastState
// with the exit code and reason) that the pod lived through.
func (c *container) instanceExited(st skiffrt.ExitStatus) {
	now := metav1.Now()
	reason := st.Reason
	if reason != "OOMKilled" {
		reason = "Error"
	}
	c.setStatus(func(s *corev1.ContainerStatus) {
		s.RestartCount++
		s.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(st.Code), Reason: reason, Message: st.Message, FinishedAt: now, ContainerID: s.ContainerID}}
	})
	c.event(corev1.EventTypeWarning, "InstanceExited", fmt.Sprintf("An instance of container %s ended (%s, exit code %d); a new one serves the next request",
		c.spec.Name, reason, st.Code))
}

// probeTarget is the container as its prober sees it.
type probeTarget struct{ c *container }

var _ prober.Target = probeTarget{}

func (t probeTarget) Event(typ, reason, msg string) { t.c.event(typ, reason, msg) }

// Exec runs an exec probe in the image the container started from.
func (t probeTarget) Exec(ctx context.Context, spec skiffrt.ContainerSpec) (skiffrt.ExitStatus, error) {
	t.c.mu.Lock()
	img := t.c.img
	t.c.mu.Unlock()
	return t.c.w.a.cfg.Runtime.Exec(ctx, img, spec)
}

func (t probeTarget) Started(ready bool) {
	t.c.setStatus(func(s *corev1.ContainerStatus) {
		s.Started = ptrTo(true)
		s.Ready = ready
	})
}

// Ready writes a change only: the prober repeats unchanged results.
func (t probeTarget) Ready(ok bool) {
	t.c.mu.Lock()
	changed := t.c.status.Ready != ok
	t.c.mu.Unlock()
	if changed {
		t.c.setStatus(func(s *corev1.ContainerStatus) { s.Ready = ok })
	}
}

func (c *container) gracePeriod() time.Duration {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if g := c.w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

func ptrTo[T any](v T) *T { return &v }

// containerArgv builds argv as Kubernetes does from the image's Entrypoint
// and Cmd and the container's command and args ($(VAR) expanded with vals):
// command replaces Entrypoint and drops Cmd, args replace Cmd. A Wasm module
// usually has no Entrypoint (`skiff image import` records none, so one
// module's image has one digest whatever it is named), and in a container
// the entrypoint is the program that becomes argv[0]. So when neither
// command nor Entrypoint names a program, argv[0] is the module's name, as
// the entrypoint would be, and args (or Cmd) follow it as os.Args[1:]:
// `args: [a, b]` must not turn "a" into the program name.
func containerArgv(c *corev1.Container, entrypoint, cmd []string, vals map[string]string) []string {
	prog, args := c.Command, c.Args
	if len(prog) == 0 {
		prog = entrypoint
		if len(args) == 0 {
			args = cmd
		}
	}
	if len(prog) == 0 {
		prog = []string{moduleName(c.Image, c.Name)}
	}
	argv := make([]string, 0, len(prog)+len(args))
	for _, s := range prog {
		argv = append(argv, expand(s, vals))
	}
	for _, s := range args {
		argv = append(argv, expand(s, vals))
	}
	return argv
}

// moduleName is the program name of an image: its repository's last path
// element without tag or digest ("registry.skiff.local/tools/hello:1" ->
// "hello"), or fallback (the container's name) when the reference has none.
func moduleName(ref, fallback string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, ":")
	if ref == "" {
		return fallback
	}
	return ref
}

// portUnavailableMessage says why a container whose port could not be
// bound did not start, and what usually causes it: pod IPs are loopback
// addresses that every process of the machine shares, so the likely holder
// is another skiff with the same pod range, which the user can fix.
func portUnavailableMessage(podIP string, err error) string {
	return fmt.Sprintf("cannot listen on the container's ports at the pod IP %s: %v. Another process on this node holds "+
		"the address; with loopback pod addresses that is usually another skiff using the same pod range "+
		"(give each its own --cluster-pod-cidr, or give neither one and each chooses a free range)", podIP, err)
}
