package validation

import (
	"strings"

	"github.com/robfig/cron/v3"
)

// parseCron checks a CronJob schedule as Kubernetes' validation does, with
// github.com/robfig/cron/v3's ParseStandard, which the CronJob controller
// also schedules by: five fields (minute hour day-of-month month
// day-of-week) or a descriptor (@hourly, @every 1h30m, ...), after an
// optional TZ= or CRON_TZ= zone. Whether a zone prefix may be used at all
// is validateCronJob's rule, as in Kubernetes.
//
// The error is returned as the library words it, unwrapped: Kubernetes puts
// that text in the Invalid cause, and users and scripts match on it.
func parseCron(spec string) error {
	// robfig v3.0.1 reads a zone prefix up to the first space and slices out
	// of range when there is none ("TZ=UTC"). This package must not panic on
	// any input; with a space appended the parser reports the missing
	// fields instead, as it does for "TZ=UTC ".
	if (strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")) && !strings.Contains(spec, " ") {
		spec += " "
	}
	_, err := cron.ParseStandard(spec)
	return err
}
