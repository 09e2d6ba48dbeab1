package imageregistry

import (
	"strings"
	"testing"
)

func TestParseNameTag(t *testing.T) {
	for _, tt := range []struct {
		nameTag   string
		repo, tag string // repo "" for a refusal
	}{
		{"hello", "hello", "latest"},
		{"hello:1", "hello", "1"},
		{"demo/app:v2", "demo/app", "v2"},
		{"a/b/c:1.0_rc-2", "a/b/c", "1.0_rc-2"},
		{"latest", "latest", "latest"},
		// The embedded registry's own name is not a foreign host.
		{Host + "/demo/app:v2", "demo/app", "v2"},
		// "library/" is kept as written: the embedded registry holds what
		// was pushed, and Resolve tries both spellings.
		{"library/hello:1", "library/hello", "1"},
		// Hosts, by Docker's rule: a first component with '.' or ':', or
		// localhost, or with capitals.
		{"docker.io/demo/app:1", "", ""},
		{"docker.io/hello", "", ""},
		{"index.docker.io/library/hello:1", "", ""},
		{"ghcr.io/demo/app:1", "", ""},
		{"registry.example:5000/app:1", "", ""},
		{"localhost:5000/app:1", "", ""},
		{"localhost/app", "", ""},
		{"Demo/app:1", "", ""},
		// Not NAME:TAG.
		{"hello@sha256:" + strings.Repeat("a", 64), "", ""},
		{"hello:1@sha256:" + strings.Repeat("a", 64), "", ""},
		{"Hello:1", "", ""},
		{"hello:", "", ""},
		{"hello:-1", "", ""},
		{"a//b", "", ""},
		{"", "", ""},
	} {
		repo, tag, err := ParseNameTag(tt.nameTag)
		if tt.repo == "" {
			if err == nil {
				t.Errorf("ParseNameTag(%q) = %q, %q; want an error", tt.nameTag, repo, tag)
			}
			continue
		}
		if err != nil || repo != tt.repo || tag != tt.tag {
			t.Errorf("ParseNameTag(%q) = %q, %q, %v; want %q, %q", tt.nameTag, repo, tag, err, tt.repo, tt.tag)
		}
	}
}
