package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sync"
)

// Hashing a plugin binary (some 20 MB) takes longer than the rest of its
// load. A file's sha256 is therefore kept, per process, with what the
// file system says of the file: device, inode, size, and modification
// and change times (fileStamp). Writing to the file, or putting another
// in its place, changes its change time or inode, which no user can set
// back: a file whose stamp is unchanged has the content that was hashed,
// and the next check of it (each load checks the binary right before it
// runs, as go-plugin's SecureConfig did) reads the kept sum. It is what
// git's index does for the files of a working tree.

var sums struct {
	mu sync.Mutex
	m  map[string]keptSum
}

type keptSum struct {
	stamp fileStamp
	sum   string
}

// sha256File returns the hex sha256 of the file at path: the kept one
// when the file is unchanged since it was hashed.
func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return sha256Open(f, path)
}

// sha256Open returns the hex sha256 of f, open on the file at path (the
// key of its kept sum): the kept one when the file is unchanged since it
// was hashed. f is read from its start, whatever its offset.
func sha256Open(f *os.File, path string) (string, error) {
	before, stamped := stampOf(f)
	if stamped {
		sums.mu.Lock()
		k, ok := sums.m[path]
		sums.mu.Unlock()
		if ok && k.stamp == before {
			return k.sum, nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	// Kept only if nothing touched the file while it was read.
	if after, ok := stampOf(f); stamped && ok && after == before {
		sums.mu.Lock()
		if sums.m == nil {
			sums.m = map[string]keptSum{}
		}
		sums.m[path] = keptSum{stamp: before, sum: sum}
		sums.mu.Unlock()
	}
	return sum, nil
}
