//go:build !amd64 || purego

package pow

import "testing"

// forEachImpl runs f with the only path there is: the generic one.
func forEachImpl(t *testing.T, f func(*testing.T)) { t.Run("generic", f) }

func eachImpl(f func(name string)) { f("generic") }

func forEachImplBench(b *testing.B, f func(*testing.B)) { b.Run("generic", f) }
