package keymutex_test

import (
	"sync"
	"testing"

	"github.com/volattach/volattach/adapters/storage/internal/keymutex"
)

func TestOneHolderPerKey(t *testing.T) {
	var m keymutex.Map
	var wg sync.WaitGroup
	inside := map[string]int{}
	var mu sync.Mutex
	for i := range 64 {
		key := []string{"a", "b"}[i%2]
		wg.Go(func() {
			unlock := m.Lock(key)
			defer unlock()
			mu.Lock()
			inside[key]++
			n := inside[key]
			mu.Unlock()
			if n != 1 {
				t.Errorf("%d holders of %s at once", n, key)
			}
			mu.Lock()
			inside[key]--
			mu.Unlock()
		})
	}
	wg.Wait()
}

func TestDifferentKeysDoNotBlock(t *testing.T) {
	var m keymutex.Map
	unlockA := m.Lock("a")
	defer unlockA()
	done := make(chan struct{})
	go func() {
		m.Lock("b")()
		close(done)
	}()
	<-done // would deadlock if "b" waited for "a"
}
