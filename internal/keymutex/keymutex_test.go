package keymutex

import (
	"sync"
	"testing"
)

func TestSerialisesPerKeyAndFrees(t *testing.T) {
	var k KeyMutex
	a, b := 0, 0
	counter := map[string]*int{"a": &a, "b": &b}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		for _, key := range []string{"a", "b"} {
			wg.Add(1)
			go func(key string) {
				defer wg.Done()
				unlock := k.Lock(key)
				v := *counter[key]
				*counter[key] = v + 1 // unserialised, increments would be lost (and -race would report it)
				unlock()
			}(key)
		}
	}
	wg.Wait()
	if a != 50 || b != 50 {
		t.Fatalf("counts a=%d b=%d", a, b)
	}
	if k.Len() != 0 {
		t.Fatalf("%d locks left", k.Len())
	}
}
