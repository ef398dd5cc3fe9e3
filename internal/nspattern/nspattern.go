// Package nspattern compiles fail-allow namespace patterns the one way the
// fail check matches them: RE2, anchored to the whole namespace name, so a
// tenant that names its own namespace cannot match an exemption by
// substring.
package nspattern

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/podhook/podhook/internal/safetext"
)

// ErrPattern marks a pattern that does not compile on its own.
var ErrPattern = errors.New("invalid fail-allow pattern")

// Compile returns p anchored (^(?:p)$) and compiled. p is compiled on its
// own first: a pattern that only compiles inside the anchoring group (such
// as "team-a)|(.*", which closes the group and matches anything) is
// refused, never widened.
func Compile(p string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(p); err != nil {
		return nil, fmt.Errorf("%w %s: %s", ErrPattern, safetext.Quote(p), why(err, p))
	}
	re, err := regexp.Compile(`^(?:` + p + `)$`)
	if err != nil {
		return nil, fmt.Errorf("%w %s: does not compile anchored: %s", ErrPattern, safetext.Quote(p), why(err, p))
	}
	return re, nil
}

// why is a compile error of pattern p without repeating p: regexp's errors
// quote the failing expression whole, whatever its length.
func why(err error, p string) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return safetext.Line(err.Error(), safetext.Keep)
	}
	if se.Expr == p || strings.Contains(p, se.Expr) && len(se.Expr) > safetext.Keep {
		return se.Code.String()
	}
	return fmt.Sprintf("%s: %s", se.Code, safetext.Quote(se.Expr))
}
