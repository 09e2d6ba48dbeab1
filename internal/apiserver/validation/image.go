package validation

import "regexp"

// imageRef is the container image reference grammar of the distribution
// project (docker/distribution reference), which Kubernetes uses to find an
// image's tag: [domain[:port]/]path[:tag][@digest].
var imageRef = func() *regexp.Regexp {
	const (
		alnum      = `[a-z0-9]+`
		separator  = `(?:[._]|__|[-]+)`
		component  = alnum + `(?:` + separator + alnum + `)*`
		domainComp = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
		domainName = domainComp + `(?:\.` + domainComp + `)*`
		ipv6       = `\[(?:[a-fA-F0-9:]+)\]`
		domain     = `(?:` + domainName + `|` + ipv6 + `)(?::[0-9]+)?`
		name       = `(?:` + domain + `/)?` + component + `(?:/` + component + `)*`
		tag        = `[\w][\w.-]{0,127}`
		digest     = `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
	)
	return regexp.MustCompile(`^(` + name + `)(?::(` + tag + `))?(?:@(` + digest + `))?$`)
}()

// hex64 is an image ID, which is not a valid repository name.
var hex64 = regexp.MustCompile(`^[a-f0-9]{64}$`)

// imageTag returns the tag Kubernetes sees in an image reference: the
// explicit tag, "latest" when there is neither tag nor digest, "" for a
// digest-only reference. ok is false when the reference does not parse.
func imageTag(image string) (tag string, ok bool) {
	if len(image) > 4096 || hex64.MatchString(image) {
		return "", false
	}
	m := imageRef.FindStringSubmatch(image)
	if m == nil || len(m[1]) > 255 {
		return "", false
	}
	switch {
	case m[2] != "":
		return m[2], true
	case m[3] != "":
		return "", true
	default:
		return "latest", true
	}
}
