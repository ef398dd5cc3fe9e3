package hook

import (
	"bytes"
	"encoding/json"
	"slices"
)

// Annotations is an OCI annotations object that remembers keys it saw more
// than once. encoding/json keeps the last of duplicated keys and other
// parsers may keep the first, so a document with duplicates can say two
// things at once; the hook treats such an identity as forged.
type Annotations struct {
	Map        map[string]string
	Duplicates []string
}

// UnmarshalJSON decodes an object of strings, or null. The common case costs
// one map decode and one byte scan: only when the scan counts more keys
// than the map holds are the keys walked again to name the duplicates.
func (a *Annotations) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*a = Annotations{Map: m}
	if m != nil && countStrings(b) != 2*len(m) {
		a.Duplicates = duplicateKeys(b)
	}
	return nil
}

// countStrings counts the JSON strings in b, a valid object whose values
// are all strings: twice its number of keys, duplicates included.
func countStrings(b []byte) int {
	n, in := 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case in && c == '\\':
			i++ // skip the escaped byte
		case c == '"':
			if !in {
				n++
			}
			in = !in
		}
	}
	return n
}

// duplicateKeys returns the keys of the object b that appear more than once.
func duplicateKeys(b []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			break
		}
		k, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if seen[k] && !slices.Contains(dups, k) {
			dups = append(dups, k)
		}
		seen[k] = true
	}
	return dups
}
