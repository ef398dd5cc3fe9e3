package hook

import "github.com/podhook/podhook/internal/jsonscan"

// Annotations is an OCI annotations object that remembers keys it saw more
// than once. encoding/json keeps the last of duplicated keys and other
// parsers may keep the first, so a document with duplicates can say two
// things at once; the hook treats such an identity as forged.
type Annotations struct {
	Map        map[string]string
	Duplicates []string
}

// UnmarshalJSON decodes an object of strings, or null, in one pass that
// also names the duplicated keys.
func (a *Annotations) UnmarshalJSON(b []byte) error {
	m, dups, err := jsonscan.StringMap(b)
	if err != nil {
		return err
	}
	*a = Annotations{Map: m, Duplicates: dups}
	return nil
}
