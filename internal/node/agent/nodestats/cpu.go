package nodestats

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/stat's times. Linux fixes it
// at 100 on every architecture Go runs on (sysconf(_SC_CLK_TCK) answers
// the same), so it is not asked for.
const clockTicks = 100

// ReadCPU is the machine's CPU time since boot, in nanoseconds, from
// /proc/stat: what `kubectl top nodes` shows the rate of.
func ReadCPU() (uint64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("node CPU: %w", err)
	}
	defer f.Close()
	return ParseProcStat(f)
}

// ParseProcStat reads the "cpu" line of /proc/stat: the time every CPU
// spent busy (user, nice, system, irq, softirq, steal; not idle or
// iowait), in nanoseconds. guest and guest_nice are already inside user
// and nice, so they are not added again.
func ParseProcStat(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		if len(fields) < 5 {
			return 0, fmt.Errorf("node CPU: short cpu line %q", sc.Text())
		}
		var busy uint64
		// user nice system idle iowait irq softirq steal guest guest_nice
		for i, f := range fields[1:] {
			if i == 3 || i == 4 || i >= 8 {
				continue
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("node CPU: field %d of the cpu line: %w", i+1, err)
			}
			busy += v
		}
		return busy * (1e9 / clockTicks), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("node CPU: %w", err)
	}
	return 0, errors.New("node CPU: no cpu line in /proc/stat")
}
