package pool

import (
	"fmt"
	"maps"
	"testing"
)

// workerSet must answer as the map it replaces would, whether the name is
// the inline first one or one of a proxy's many.
func TestWorkerSetIsAMap(t *testing.T) {
	var w workerSet
	ref := map[string]Username{}
	for i := range 40 {
		name := fmt.Sprintf("addr.w%d", i%23) // some names come again
		u := Username{Address: "addr", Worker: fmt.Sprintf("w%d", i%23)}
		if _, known := w.get(name); !known {
			w.add(name, u)
		}
		if _, known := ref[name]; !known {
			ref[name] = u
		}
		if w.len() != len(ref) {
			t.Fatalf("after %s: len %d, want %d", name, w.len(), len(ref))
		}
	}
	if got := maps.Collect(w.all()); !maps.Equal(got, ref) {
		t.Fatalf("all() = %v, want %v", got, ref)
	}
	if u, ok := w.get("addr.w0"); !ok || u.Worker != "w0" {
		t.Fatalf("first worker: %v, %v", u, ok)
	}
	if _, ok := w.get("addr.nobody"); ok {
		t.Fatal("unknown worker found")
	}
	for name := range w.all() {
		if name != "addr.w0" {
			t.Fatalf("all() starts with %s, not the first authorized", name)
		}
		break
	}
	var one workerSet
	one.add("a.b", Username{"a", "b"})
	if one.more != nil {
		t.Fatal("one worker made a map")
	}
}
