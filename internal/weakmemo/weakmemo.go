// Package weakmemo keeps a value derived from an object for as long as the object lives: the entry is keyed by a
// weak pointer, so it neither keeps the object alive nor outlives it (a cleanup drops it once the object is
// collected). It is for objects that are never modified once shared, such as the store's records, whose updates
// replace them: the same object then always yields the same value, and an updated record gets a new entry.
package weakmemo

import (
	"runtime"
	"sync"
	"weak"
)

// Memo maps live objects of type K to values of type V. The zero Memo is ready to use; it is safe for concurrent
// use and must not be copied.
type Memo[K, V any] struct {
	mu sync.Mutex
	m  map[weak.Pointer[K]]V
}

// Get returns the value kept for k, or derives it with derive(k), keeps it while k lives and returns it. k must
// point to the start of an allocation of its own (not an element of a slice or a field, nor a pointer-free object
// under 16 bytes, which Go packs with others) for its entry to be dropped when it is collected. derive may run
// more than once for the same k when callers race; one result is kept.
func (m *Memo[K, V]) Get(k *K, derive func(*K) V) V {
	key := weak.Make(k)
	m.mu.Lock()
	v, ok := m.m[key]
	m.mu.Unlock()
	if ok {
		return v
	}
	v = derive(k)
	m.mu.Lock()
	defer m.mu.Unlock()
	if kept, ok := m.m[key]; ok {
		return kept
	}
	if m.m == nil {
		m.m = map[weak.Pointer[K]]V{}
	}
	m.m[key] = v
	runtime.AddCleanup(k, m.drop, key)
	return v
}

func (m *Memo[K, V]) drop(key weak.Pointer[K]) {
	m.mu.Lock()
	delete(m.m, key)
	m.mu.Unlock()
}

// Len is the number of entries kept.
func (m *Memo[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
