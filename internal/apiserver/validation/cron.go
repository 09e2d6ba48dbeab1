package validation

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseCron checks a CronJob schedule the way Kubernetes does, which is
// github.com/robfig/cron/v3's ParseStandard: five fields (minute hour
// day-of-month month day-of-week) of "*", "?", numbers or names, lists (,),
// ranges (-) and steps (/), or a descriptor (@hourly, @every 1h, ...), with an
// optional leading TZ=/CRON_TZ= zone. The error texts are robfig's, since
// they reach the user verbatim.
func parseCron(spec string) error {
	if spec == "" {
		return fmt.Errorf("empty spec string")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		eq := strings.Index(spec, "=")
		sp := strings.Index(spec, " ")
		if sp < 0 {
			sp = len(spec)
		}
		if eq+1 > sp {
			return fmt.Errorf("provided bad location %s", spec)
		}
		if _, err := loadLocation(spec[eq+1 : sp]); err != nil {
			return fmt.Errorf("provided bad location %s: %v", spec[eq+1:sp], err)
		}
		spec = strings.TrimSpace(spec[sp:])
	}
	if strings.HasPrefix(spec, "@") {
		return parseDescriptor(spec)
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(fields), fields)
	}
	for i, f := range fields {
		if err := cronField(f, cronBounds[i]); err != nil {
			return err
		}
	}
	return nil
}

func parseDescriptor(d string) error {
	switch d {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	const every = "@every "
	if strings.HasPrefix(d, every) {
		if _, err := time.ParseDuration(d[len(every):]); err != nil {
			return fmt.Errorf("failed to parse duration %s: %s", d, err)
		}
		return nil
	}
	return fmt.Errorf("unrecognized descriptor: %s", d)
}

type bounds struct {
	min, max uint
	names    map[string]uint
}

var cronBounds = [5]bounds{
	{0, 59, nil},
	{0, 23, nil},
	{1, 31, nil},
	{1, 12, map[string]uint{"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12}},
	{0, 6, map[string]uint{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}},
}

// cronField checks one comma-separated field.
func cronField(f string, b bounds) error {
	for _, expr := range strings.FieldsFunc(f, func(r rune) bool { return r == ',' }) {
		if err := cronRange(expr, b); err != nil {
			return err
		}
	}
	return nil
}

// cronRange checks number | name | * | ? | a-b, each optionally /step.
func cronRange(expr string, b bounds) error {
	rangeAndStep := strings.Split(expr, "/")
	lowAndHigh := strings.Split(rangeAndStep[0], "-")
	single := len(lowAndHigh) == 1
	var start, end, step uint
	var err error
	if lowAndHigh[0] == "*" || lowAndHigh[0] == "?" {
		start, end = b.min, b.max
	} else {
		if start, err = cronIntOrName(lowAndHigh[0], b.names); err != nil {
			return err
		}
		switch len(lowAndHigh) {
		case 1:
			end = start
		case 2:
			if end, err = cronIntOrName(lowAndHigh[1], b.names); err != nil {
				return err
			}
		default:
			return fmt.Errorf("too many hyphens: %s", expr)
		}
	}
	switch len(rangeAndStep) {
	case 1:
		step = 1
	case 2:
		if step, err = cronInt(rangeAndStep[1]); err != nil {
			return err
		}
		if single {
			// "N/step" means "N-max/step".
			end = b.max
		}
	default:
		return fmt.Errorf("too many slashes: %s", expr)
	}
	switch {
	case start < b.min:
		return fmt.Errorf("beginning of range (%d) below minimum (%d): %s", start, b.min, expr)
	case end > b.max:
		return fmt.Errorf("end of range (%d) above maximum (%d): %s", end, b.max, expr)
	case start > end:
		return fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, expr)
	case step == 0:
		return fmt.Errorf("step of range should be a positive number: %s", expr)
	}
	return nil
}

func cronIntOrName(s string, names map[string]uint) (uint, error) {
	if n, ok := names[strings.ToLower(s)]; ok {
		return n, nil
	}
	return cronInt(s)
}

func cronInt(s string) (uint, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %s", s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative number (%d) not allowed: %s", n, s)
	}
	return uint(n), nil
}
