package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// nodeMemory is the node's memory as the agent counts it.
type nodeMemory struct {
	// total is the machine's memory (MemTotal), or the limit of the memory
	// cgroup the engine runs in when that is less.
	total int64
	// available is what can still be used: the host's MemAvailable, or
	// what the cgroup's limit leaves beside its working set when that is
	// less (the kubelet's memory.available signal).
	available int64
}

// readNodeMemory reads /proc/meminfo and the engine's memory cgroup.
func readNodeMemory() (nodeMemory, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nodeMemory{}, fmt.Errorf("node memory: %w", err)
	}
	defer f.Close()
	m, err := parseMeminfo(f)
	if err != nil {
		return nodeMemory{}, err
	}
	if limit, workingSet, ok := cgroupMemory(); ok && limit < m.total {
		m.total = limit
		m.available = min(m.available, limit-workingSet)
	}
	return m, nil
}

// parseMeminfo reads MemTotal and MemAvailable (in kB) from /proc/meminfo.
func parseMeminfo(r io.Reader) (nodeMemory, error) {
	var m nodeMemory
	var haveTotal, haveAvail bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		var dst *int64
		switch fields[0] {
		case "MemTotal:":
			dst, haveTotal = &m.total, true
		case "MemAvailable:":
			dst, haveAvail = &m.available, true
		default:
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("node memory: %s: %w", fields[0], err)
		}
		*dst = kb * 1024
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("node memory: %w", err)
	}
	if !haveTotal {
		return m, errors.New("node memory: no MemTotal in /proc/meminfo")
	}
	if !haveAvail {
		m.available = m.total // kernels before 3.14; nothing better to go on
	}
	return m, nil
}

// cgroupMemory is the limit and working set (usage less inactive file
// pages, as the kubelet counts it) of the memory cgroup this process runs
// in, when it has a limit: cgroup v2 first, then v1.
func cgroupMemory() (limit, workingSet int64, ok bool) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, 0, false
	}
	v2, v1 := cgroupPaths(string(self))
	if v2 != "" {
		for _, dir := range []string{filepath.Join("/sys/fs/cgroup", v2), "/sys/fs/cgroup"} {
			limit, ok := readCgroupInt(filepath.Join(dir, "memory.max"))
			if !ok {
				continue
			}
			usage, _ := readCgroupInt(filepath.Join(dir, "memory.current"))
			return limit, usage - cgroupStat(filepath.Join(dir, "memory.stat"), "inactive_file"), true
		}
	}
	if v1 != "" {
		for _, dir := range []string{filepath.Join("/sys/fs/cgroup/memory", v1), "/sys/fs/cgroup/memory"} {
			limit, ok := readCgroupInt(filepath.Join(dir, "memory.limit_in_bytes"))
			if !ok {
				continue
			}
			usage, _ := readCgroupInt(filepath.Join(dir, "memory.usage_in_bytes"))
			return limit, usage - cgroupStat(filepath.Join(dir, "memory.stat"), "total_inactive_file"), true
		}
	}
	return 0, 0, false
}

// cgroupPaths finds this process's cgroup v2 path ("0::/path") and v1
// memory controller path ("N:memory:/path") in /proc/self/cgroup.
func cgroupPaths(selfCgroup string) (v2, v1 string) {
	for _, line := range strings.Split(selfCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case strings.Contains(","+parts[1]+",", ",memory,"):
			v1 = parts[2]
		}
	}
	return v2, v1
}

// readCgroupInt reads a cgroup file holding a number; "max", a missing
// file and v1's "no limit" (near MaxInt64) are not limits.
func readCgroupInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > math.MaxInt64/2 {
		return 0, false
	}
	return v, true
}

// cgroupStat reads one counter of a memory.stat file; 0 when absent.
func cgroupStat(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
