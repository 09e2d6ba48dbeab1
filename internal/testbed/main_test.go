package testbed_test

import (
	"os"
	"testing"

	"github.com/skiffhq/skiff/internal/testbed"
)

// TestMain removes the skiff binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	testbed.RemoveBuilt()
	os.Exit(code)
}
