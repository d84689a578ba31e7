package kernel

// ring keeps the last limit values added, oldest out first, and counts
// what it drops; limit 0 keeps everything. It is how the trace and the
// witness's reports stay bounded in a long-lived kernel.
type ring[T any] struct {
	limit   int
	buf     []T
	start   int // the oldest value once the ring is full
	dropped uint64
}

// add appends v; when the ring is full it returns the value it dropped.
func (r *ring[T]) add(v T) (old T, dropped bool) {
	if r.limit <= 0 || len(r.buf) < r.limit {
		r.buf = append(r.buf, v)
		return old, false
	}
	old = r.buf[r.start]
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
	r.dropped++
	return old, true
}

// at is the i-th kept value, oldest first.
func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

// tail copies the newest n kept values, oldest first.
func (r *ring[T]) tail(n int) []T {
	if n > len(r.buf) {
		n = len(r.buf)
	}
	out := make([]T, n)
	for i := range n {
		out[i] = r.at(len(r.buf) - n + i)
	}
	return out
}

// all copies every kept value, oldest first.
func (r *ring[T]) all() []T { return r.tail(len(r.buf)) }
