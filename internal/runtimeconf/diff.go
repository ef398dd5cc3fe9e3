package runtimeconf

import (
	"bytes"

	udiff "github.com/aymanbagabas/go-udiff"
)

// Diff returns a unified diff (3 lines of context) from a to b, or "" when
// they are equal, made by go-udiff (the diff algorithm of gopls).
func Diff(nameA, nameB string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	return udiff.Unified(nameA, nameB, string(a), string(b))
}
