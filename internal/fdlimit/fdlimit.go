// Package fdlimit raises the process's open-file limit and divides it: a
// pool's descriptors are mostly sockets of miners and dashboard visitors,
// but the node RPC, the database pool, the spool and the logs need some
// too, and an attacker holding every miner slot must never leave those
// without one. The reserve is taken off the top before any listener's cap
// is set.
package fdlimit

// Budget is how a limit is shared out.
type Budget struct {
	Limit   int // the open-file limit in force
	Reserve int // kept for node, database, spool, logs, restarts of listeners
	Stratum int // cap on Stratum connections (all ports)
	HTTP    int // cap on dashboard/API connections
}

// MinReserve is the least kept back; a tenth of a large limit is kept.
const MinReserve = 128

// Share divides limit: the reserve first, then httpWant (at most a
// quarter of what is left) to HTTP, the rest to Stratum. A want of 0
// takes the default share; explicit wants larger than what is left are
// cut down, so a misconfigured cap cannot eat the reserve.
func Share(limit, stratumWant, httpWant int) Budget {
	limit = max(limit, 0) // no limit below nothing (and no overflow below)
	b := Budget{Limit: limit, Reserve: max(MinReserve, limit/10)}
	left := max(0, limit-b.Reserve)
	if httpWant <= 0 {
		httpWant = min(1024, left/8)
	}
	b.HTTP = min(httpWant, left/4)
	left -= b.HTTP
	if stratumWant <= 0 || stratumWant > left {
		stratumWant = left
	}
	b.Stratum = stratumWant
	return b
}
