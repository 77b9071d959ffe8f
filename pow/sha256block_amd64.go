//go:build !purego

package pow

// useSHANI selects the SHA extensions' path; tests turn it off to run the
// generic one on the same machine.
var useSHANI = hasSHANI()

// hasSHANI asks CPUID (pow stays free of dependencies) for the SHA
// extensions and the SSSE3/SSE4.1 shuffles and blends the assembly uses.
func hasSHANI() bool {
	if maxLeaf, _, _, _ := cpuid(0, 0); maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	const ssse3, sse41, sha = 1 << 9, 1 << 19, 1 << 29
	return ecx1&ssse3 != 0 && ecx1&sse41 != 0 && ebx7&sha != 0
}

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// blockSHANI compresses p's whole 64-byte blocks into h.
//
//go:noescape
func blockSHANI(h *[8]uint32, p []byte)

// hash32SHANI writes the SHA-256 of the 32-byte digest state h stands for.
//
//go:noescape
func hash32SHANI(out *[32]byte, h *[8]uint32)

// sha256d64SHANI is SHA256d64 in one call: the message block, the padding
// block and the second hash, the state kept in registers throughout.
//
//go:noescape
func sha256d64SHANI(out *[32]byte, in *[64]byte)

func block(h *[8]uint32, p []byte) {
	if useSHANI {
		blockSHANI(h, p)
		return
	}
	blockGeneric(h, p)
}

func hash32(out *[32]byte, h *[8]uint32) {
	if useSHANI {
		hash32SHANI(out, h)
		return
	}
	hash32Generic(out, h)
}

func sha256d64(out *[32]byte, in *[64]byte) {
	if useSHANI {
		sha256d64SHANI(out, in)
		return
	}
	sha256d64Generic(out, in)
}
