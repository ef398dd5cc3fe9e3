package hook

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParseSpec decodes the captured CRI-O config.json.
func BenchmarkParseSpec(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(fixtures, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for range b.N {
		if _, err := ParseSpec(data); err != nil {
			b.Fatal(err)
		}
	}
}
