//go:build !amd64 || purego

package sha256d

// kernelsBuilt: this build has the assembly kernels.
const kernelsBuilt = false
