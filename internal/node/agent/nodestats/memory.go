// Package nodestats reads what a node has: its memory (the machine's, or
// the memory cgroup the engine runs in) and the file system of its data
// directory, the signals the agent's admission and eviction decide on, as
// the kubelet's eviction manager reads them.
package nodestats

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

// Memory is the node's memory as the agent counts it.
type Memory struct {
	// total is the machine's memory (MemTotal), or the limit of the memory
	// cgroup the engine runs in when that is less.
	Total int64
	// available is what can still be used: the host's MemAvailable, or
	// what the cgroup's limit leaves beside its working set when that is
	// less (the kubelet's memory.Available signal).
	Available int64
}

// ReadMemory reads /proc/meminfo and the engine's memory cgroup.
func ReadMemory() (Memory, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return Memory{}, fmt.Errorf("node memory: %w", err)
	}
	defer f.Close()
	m, err := ParseMeminfo(f)
	if err != nil {
		return Memory{}, err
	}
	if limit, workingSet, ok := CgroupMemory(); ok && limit < m.Total {
		m.Total = limit
		m.Available = min(m.Available, limit-workingSet)
	}
	return m, nil
}

// ParseMeminfo reads MemTotal and MemAvailable (in kB) from /proc/meminfo.
func ParseMeminfo(r io.Reader) (Memory, error) {
	var m Memory
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
			dst, haveTotal = &m.Total, true
		case "MemAvailable:":
			dst, haveAvail = &m.Available, true
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
		m.Available = m.Total // kernels before 3.14; nothing better to go on
	}
	return m, nil
}

// CgroupMemory is the limit and working set (usage less inactive file
// pages, as the kubelet counts it) of the memory cgroup this process runs
// in, when it has a limit: cgroup v2 first, then v1.
func CgroupMemory() (limit, workingSet int64, ok bool) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, 0, false
	}
	v2, v1 := CgroupPaths(string(self))
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

// CgroupPaths finds this process's cgroup v2 path ("0::/path") and v1
// memory controller path ("N:memory:/path") in /proc/self/cgroup.
func CgroupPaths(selfCgroup string) (v2, v1 string) {
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
