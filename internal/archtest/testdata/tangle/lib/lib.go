// Package lib is allowed everywhere.
package lib

import "strings"

var Name = strings.ToUpper("lib")
