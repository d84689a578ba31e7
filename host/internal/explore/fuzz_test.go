package explore

import (
	"bytes"
	"testing"
)

// FuzzReadResult: any input is refused with an error or read; what is
// read writes back to JSON that reads the same.
func FuzzReadResult(f *testing.F) {
	f.Add([]byte(`{"version": 1}`))
	f.Add([]byte(`{"version": 1, "orders": {"total": 144, "run": 4, "pruned": 140}, "shard": {"index": 0, "count": 1}}`))
	f.Add([]byte(`{"version": 1, "findings": [{"signature": "s", "reproducer": {"fault": {"entry": "a:b", "kind": "crash"}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadResult(data)
		if err != nil {
			return
		}
		out, err := r.JSON()
		if err != nil {
			t.Fatalf("ReadResult accepted what cannot be written: %v", err)
		}
		r2, err := ReadResult(out)
		if err != nil {
			t.Fatalf("re-read of written result: %v\n%s", err, out)
		}
		out2, err := r2.JSON()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("written result does not round-trip: %v", err)
		}
	})
}

// FuzzParseShard: what parses prints back as itself.
func FuzzParseShard(f *testing.F) {
	for _, s := range []string{"0/1", "3/4", "4/4", "-1/2", "a/b", " 1 / 2 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sh, err := ParseShard(s)
		if err != nil {
			return
		}
		if sh.Index < 0 || sh.Index >= sh.Count {
			t.Fatalf("ParseShard(%q) = %v, out of range", s, sh)
		}
		back, err := ParseShard(sh.String())
		if err != nil || back != sh {
			t.Fatalf("ParseShard(%q) = %v, printed %q parses to %v, %v", s, sh, sh.String(), back, err)
		}
	})
}
