// Package sha256d scans nonce ranges of an 80-byte block header for double
// SHA-256 hashes that meet a target, with one kernel per CPU feature set
// (generic Go, SHA-NI, AVX2, AVX-512) chosen at run time.
//
// Byte order: a hash is the 32 bytes sha256 produces (chainhash order), read
// as a little-endian 256-bit integer; the target is given in the same order.
// A nonce wins when hash ≤ target.
package sha256d

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/klauspost/cpuid/v2"

	"github.com/hashforge/hashforge/pow"
)

// EnvImpl names the environment variable that forces an implementation.
const EnvImpl = "HASHFORGE_SHA256D_IMPL"

// Scanner hashes nonce ranges of a Work. A Scanner is not safe for concurrent
// use; create one per goroutine with Implementation.New.
type Scanner interface {
	Name() string
	// Scan hashes nonces first..last inclusive (the nonce is stored
	// little-endian at header[76:80]) and appends to found every nonce whose
	// double SHA-256 is ≤ the target, each confirmed with a full hash.
	Scan(w *Work, first, last uint32, found []uint32) []uint32
}

// Implementation is one registered kernel.
type Implementation struct {
	Name      string
	Available bool // this CPU (and build) can run it
	New       func() Scanner
}

type registration struct {
	Implementation
	rank int // higher is preferred when available
	// needs is the CPU features the kernel uses; nil when it needs none
	// or this build has no kernel for it (tests name what a CPU lacks).
	needs []cpuid.FeatureID
}

var registry []registration

// register is called from the init functions of the per-kernel files.
func register(name string, rank int, available bool, needs []cpuid.FeatureID, newScanner func() Scanner) {
	registry = append(registry, registration{Implementation{name, available, newScanner}, rank, needs})
	sort.SliceStable(registry, func(i, j int) bool { return registry[i].rank > registry[j].rank })
}

// Implementations returns every registered implementation, best first, with
// Available set for this CPU.
func Implementations() []Implementation {
	out := make([]Implementation, len(registry))
	for i, r := range registry {
		out[i] = r.Implementation
	}
	return out
}

// Available returns the implementations this CPU can run, best first.
func Available() []Implementation {
	var out []Implementation
	for _, r := range registry {
		if r.Available {
			out = append(out, r.Implementation)
		}
	}
	return out
}

// Default returns the implementation named by HASHFORGE_SHA256D_IMPL, or the
// best available one when the variable is unset or names something this CPU
// cannot run. Callers that must refuse a bad setting use Configured.
func Default() Implementation {
	if impl, err := Configured(); err == nil {
		return impl
	}
	return best()
}

// Configured is Default that reports a bad HASHFORGE_SHA256D_IMPL instead of
// falling back.
func Configured() (Implementation, error) {
	if name := strings.TrimSpace(os.Getenv(EnvImpl)); name != "" {
		impl, err := Lookup(name)
		if err != nil {
			return Implementation{}, fmt.Errorf("%s: %w", EnvImpl, err)
		}
		return impl, nil
	}
	return best(), nil
}

func best() Implementation {
	for _, r := range registry {
		if r.Available {
			return r.Implementation
		}
	}
	panic("sha256d: generic implementation not registered")
}

// ErrUnavailable is wrapped by Lookup errors.
var ErrUnavailable = errors.New("sha256d implementation not available")

// Lookup returns the implementation with the given name if this CPU can run it.
func Lookup(name string) (Implementation, error) {
	var avail []string
	for _, r := range registry {
		if r.Available {
			avail = append(avail, r.Name)
		}
	}
	for _, r := range registry {
		if r.Name != name {
			continue
		}
		if !r.Available {
			return Implementation{}, fmt.Errorf("%w: %q is not supported by this CPU or build (available: %s)",
				ErrUnavailable, name, strings.Join(avail, ", "))
		}
		return r.Implementation, nil
	}
	return Implementation{}, fmt.Errorf("%w: unknown implementation %q (available: %s)",
		ErrUnavailable, name, strings.Join(avail, ", "))
}

// Meets reports whether hash ≤ target, both read as little-endian 256-bit
// integers.
func Meets(hash *[32]byte, target *[32]byte) bool {
	for i := 28; i >= 0; i -= 4 {
		h := binary.LittleEndian.Uint32(hash[i:])
		t := binary.LittleEndian.Uint32(target[i:])
		if h != t {
			return h < t
		}
	}
	return true
}

// confirm runs the reference hash for a candidate a kernel reported after
// looking only at the top word, so no kernel can return a false positive.
func confirm(w *Work, nonce uint32, found []uint32) []uint32 {
	h := w.header
	binary.LittleEndian.PutUint32(h[76:], nonce)
	sum := pow.SHA256d(h[:])
	if Meets(&sum, &w.target) {
		found = append(found, nonce)
	}
	return found
}
