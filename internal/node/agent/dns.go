package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// A pod's name resolution, as the kubelet sets it up: per pod a directory
// with resolv.conf (dnsPolicy and dnsConfig applied), hosts (localhost, the
// pod's own address and names, spec.hostAliases) and hostname, which every
// container sees as /etc; the runtime also gets the resolver configuration
// (ContainerSpec.DNS) for the lookups it makes for the guest.

// The resolver's limits the kubelet enforces on what a pod's resolv.conf
// holds (k8s.io/kubernetes/pkg/apis/core/validation: MaxDNSNameservers,
// MaxDNSSearchPaths, MaxDNSSearchListChars).
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
)

// podDNS is a resolv.conf's content.
type podDNS struct {
	servers, searches, options []string
}

// nodeFilesDir is where a pod's /etc is written, in the pod's directory.
const nodeFilesDir = "etc"

// readResolvConf reads the nameserver, search and options lines of a
// resolv.conf as the kubelet does: every nameserver, the last search line,
// every option. A missing file is an empty configuration.
func readResolvConf(p string) (podDNS, error) {
	var d podDNS
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, fmt.Errorf("read the node's resolver configuration: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			d.servers = append(d.servers, fields[1])
		case "search":
			d.searches = fields[1:]
		case "options":
			d.options = append(d.options, fields[1:]...)
		}
	}
	if err := sc.Err(); err != nil {
		return d, fmt.Errorf("read the node's resolver configuration: %w", err)
	}
	return d, nil
}

// podDNSConfig is pod's resolver configuration, the kubelet's GetPodDNS:
// ClusterFirst (the default, and ClusterFirst with hostNetwork falls back
// to Default) gets the cluster DNS, the cluster's search domains before the
// node's, and ndots:5; ClusterFirstWithHostNet the same; Default the
// node's resolv.conf; None nothing but dnsConfig. dnsConfig's nameservers
// and searches are appended (duplicates dropped) and its options override
// options of the same name. warnings are events for the pod, in the
// kubelet's words.
func (a *Agent) podDNSConfig(pod *corev1.Pod) (d podDNS, warnings []string, err error) {
	host, err := readResolvConf(a.cfg.ResolvConf)
	if err != nil {
		return d, nil, err
	}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	cluster := policy == corev1.DNSClusterFirstWithHostNet || (policy == corev1.DNSClusterFirst && !pod.Spec.HostNetwork)
	switch {
	case policy == corev1.DNSNone:
	case cluster && len(a.cfg.ClusterDNS) > 0:
		d.servers = slices.Clone(a.cfg.ClusterDNS)
		dom := a.cfg.ClusterDomain
		d.searches = omitDuplicates(append([]string{pod.Namespace + ".svc." + dom, "svc." + dom, dom}, host.searches...))
		d.options = []string{"ndots:5"}
	default:
		if cluster {
			warnings = append(warnings, fmt.Sprintf("pod: %q. kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.",
				pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", corev1.DNSClusterFirst, corev1.DNSDefault))
		}
		d = host
	}
	if c := pod.Spec.DNSConfig; c != nil {
		d.servers = omitDuplicates(append(d.servers, c.Nameservers...))
		d.searches = omitDuplicates(append(d.searches, c.Searches...))
		d.options = mergeDNSOptions(d.options, c.Options)
	}
	if len(d.servers) > maxDNSNameservers {
		d.servers = d.servers[:maxDNSNameservers]
		warnings = append(warnings, "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: "+
			strings.Join(d.servers, " "))
	}
	if trimmed := fitSearches(d.searches); len(trimmed) < len(d.searches) {
		d.searches = trimmed
		warnings = append(warnings, "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: "+
			strings.Join(d.searches, " "))
	}
	return d, warnings, nil
}

// fitSearches keeps the search domains that fit the resolver's limits.
func fitSearches(s []string) []string {
	if len(s) > maxDNSSearchPaths {
		s = s[:maxDNSSearchPaths]
	}
	for len(s) > 0 && len(strings.Join(s, " ")) > maxDNSSearchListChars {
		s = s[:len(s)-1]
	}
	return s
}

func omitDuplicates(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// mergeDNSOptions merges options: one given by the pod replaces the
// existing option of its name; order is kept, new names at the end.
func mergeDNSOptions(existing []string, pod []corev1.PodDNSConfigOption) []string {
	out := slices.Clone(existing)
	for _, o := range pod {
		opt := o.Name
		if o.Value != nil && *o.Value != "" {
			opt += ":" + *o.Value
		}
		i := slices.IndexFunc(out, func(e string) bool { n, _, _ := strings.Cut(e, ":"); return n == o.Name })
		if i >= 0 {
			out[i] = opt
		} else {
			out = append(out, opt)
		}
	}
	return out
}

// resolvConf is d as a resolv.conf.
func (d podDNS) resolvConf() []byte {
	var b bytes.Buffer
	if len(d.servers) > 0 {
		for _, s := range d.servers {
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
	}
	if len(d.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.searches, " "))
	}
	if len(d.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.options, " "))
	}
	return b.Bytes()
}

// runtimeDNS is d as the runtime takes it: ndots from the options (the
// resolver's default is 1).
func (d podDNS) runtimeDNS() *skiffrt.DNSConfig {
	ndots := 1
	for _, o := range d.options {
		if v, ok := strings.CutPrefix(o, "ndots:"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				ndots = min(n, 15) // the resolver's cap
			}
		}
	}
	return &skiffrt.DNSConfig{Nameservers: slices.Clone(d.servers), Searches: slices.Clone(d.searches), Ndots: ndots}
}

// podHostname is the pod's host name and, with spec.subdomain, its fully
// qualified name (hostname.subdomain.namespace.svc.domain), as the
// kubelet's GeneratePodHostNameAndDomain: spec.hostname, or the pod's name
// cut to 63 characters.
func podHostname(pod *corev1.Pod, domain string) (hostname, fqdn string) {
	hostname = pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
		if len(hostname) > 63 {
			hostname = strings.TrimRight(hostname[:63], "-.")
		}
	}
	if pod.Spec.Subdomain != "" {
		fqdn = hostname + "." + pod.Spec.Subdomain + "." + pod.Namespace + ".svc." + domain
	}
	return hostname, fqdn
}

// hostsFile is the pod's /etc/hosts, the kubelet's managed hosts file.
func hostsFile(pod *corev1.Pod, ip, domain string) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	hostname, fqdn := podHostname(pod, domain)
	if ip != "" {
		if fqdn != "" {
			fmt.Fprintf(&b, "%s\t%s\t%s\n", ip, fqdn, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, h := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", h.IP, strings.Join(h.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// writeNodeFiles writes the pod's resolv.conf, hosts and hostname into
// dir/etc, and returns that directory and the resolver configuration.
func (a *Agent) writeNodeFiles(pod *corev1.Pod, ip, dir string) (etc string, d podDNS, warnings []string, err error) {
	d, warnings, err = a.podDNSConfig(pod)
	if err != nil {
		return "", d, warnings, err
	}
	etc = filepath.Join(dir, nodeFilesDir)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return "", d, warnings, fmt.Errorf("pod files: %w", err)
	}
	hostname, fqdn := podHostname(pod, a.cfg.ClusterDomain)
	if pod.Spec.SetHostnameAsFQDN != nil && *pod.Spec.SetHostnameAsFQDN && fqdn != "" {
		hostname = fqdn
	}
	for name, content := range map[string][]byte{
		"resolv.conf": d.resolvConf(),
		"hosts":       hostsFile(pod, ip, a.cfg.ClusterDomain),
		"hostname":    []byte(hostname + "\n"),
	} {
		// Written at every start of the pod's worker, so nothing to fsync.
		if err := os.WriteFile(filepath.Join(etc, name), content, 0o644); err != nil {
			return "", d, warnings, fmt.Errorf("pod files: %w", err)
		}
	}
	return etc, d, warnings, nil
}

// withNodeFiles adds the pod's /etc (etc, the directory writeNodeFiles
// made) to a container's mounts, last, read-only, unless the container
// mounts something at /etc itself (then it keeps its own, as a container
// that mounts over the kubelet's files does).
func withNodeFiles(mounts []skiffrt.Mount, etc string) []skiffrt.Mount {
	if etc == "" {
		return mounts
	}
	for _, m := range mounts {
		if path.Clean(m.GuestPath) == "/etc" {
			return mounts
		}
	}
	return append(mounts, skiffrt.Mount{HostPath: etc, GuestPath: "/etc", ReadOnly: true, NodeFiles: true})
}
