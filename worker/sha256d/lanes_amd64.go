//go:build amd64 && !purego

package sha256d

// laneKernel hashes groups×lanes consecutive nonces starting at nonce. It
// returns early after the first group in which some lane's top hash word
// passes the target's, with done counting the nonces hashed so far (that
// group included) and mask holding the passing lanes of that group.
type laneKernel func(k *kernelData, nonce uint32, groups uint32) (done uint32, mask uint32)

// maxGroups bounds one kernel call so done never overflows uint32.
const maxGroups = 1 << 24

// scanLanes drives a lane kernel over first..last. A tail shorter than a
// group runs as a whole group with the lanes past last masked off.
func scanLanes(w *Work, first, last uint32, found []uint32, lanes uint32, kern laneKernel) []uint32 {
	if first > last {
		return found
	}
	remaining := uint64(last) - uint64(first) + 1
	nonce := first
	for remaining > 0 {
		groups := remaining / uint64(lanes)
		valid := lanes
		if groups == 0 {
			groups, valid = 1, uint32(remaining)
		}
		groups = min(groups, maxGroups)
		done, mask := kern(&w.k, nonce, uint32(groups))
		if mask != 0 {
			base := nonce + done - lanes
			if done == uint32(groups)*lanes {
				mask &= 1<<valid - 1
			}
			for i := uint32(0); mask != 0; i, mask = i+1, mask>>1 {
				if mask&1 != 0 {
					found = confirm(w, base+i, found)
				}
			}
		}
		if uint64(done) >= remaining {
			break
		}
		remaining -= uint64(done)
		nonce += done
	}
	return found
}
