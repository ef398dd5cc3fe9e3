// Package nspattern compiles fail-allow namespace patterns the one way the
// fail check matches them: RE2, anchored to the whole namespace name, so a
// tenant that names its own namespace cannot match an exemption by
// substring.
package nspattern

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrPattern marks a pattern that does not compile.
var ErrPattern = errors.New("invalid fail-allow pattern")

// Compile returns p anchored (^(?:p)$) and compiled.
func Compile(p string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrPattern, p, err)
	}
	return re, nil
}
