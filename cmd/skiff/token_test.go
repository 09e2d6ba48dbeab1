package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The token comes from --token, --token-file or $SKIFF_TOKEN, in that
// order, trimmed; both flags at once, an unreadable or empty file are
// errors.
func TestTokenFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		flags   tokenFlags
		env     string
		want    string
		wantErr string
	}{
		{"flag", tokenFlags{token: "from-flag "}, "from-env", "from-flag", ""},
		{"file", tokenFlags{file: file}, "from-env", "from-file", ""},
		{"env", tokenFlags{}, " from-env\n", "from-env", ""},
		{"none", tokenFlags{}, "", "", ""},
		{"both", tokenFlags{token: "a", file: file}, "", "", "not both"},
		{"missing file", tokenFlags{file: file + ".nope"}, "", "", "--token-file"},
		{"empty file", tokenFlags{file: empty}, "from-env", "", "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tokenEnv, tc.env)
			got, err := tc.flags.value()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("value() = %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("value() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
