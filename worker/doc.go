// Package worker is the bundled miner: the Stratum V1 client session, the
// work scheduler that hands nonce slices to devices, the CPU device, and the
// hashrate meter and status output.
//
// Decisions a pool operator or miner may want to know:
//
//   - Search order per job: nonce ranges, then the next extranonce2, then
//     version bits inside the BIP 310 mask granted by mining.configure. ntime
//     is never rolled. Each device pulls slices sized to ~100 ms of its own
//     speed; CPU threads re-check a job generation counter every ~5 ms, so a
//     new job stops old work within milliseconds.
//   - mining.set_difficulty applies in full to the next mining.notify. Jobs
//     already running take it only when it is harder, so every share sent
//     meets both the old and the new target and no pool policy rejects it.
//   - mining.set_extranonce and mining.set_version_mask take effect at once:
//     the current job is republished and candidates built on the old values
//     are dropped as stale.
//   - Every candidate is re-hashed with the reference pow.SHA256d and checked
//     against the live share target and job state right before it is sent;
//     submits go out one at a time, in order, so nothing found for a job
//     cleared by a clean notify is sent after the miner has seen it.
//   - While disconnected the devices idle: work from a closed connection can
//     no longer be submitted.
//   - Failover: a working pool that drops is retried first (resuming its
//     session id); an unreachable one is skipped for the next URL; after a
//     full round the miner waits a jittered exponential delay (1 s .. 30 s).
//     On a backup, earlier pools are probed (connect + subscribe) every
//     ProbeInterval and the miner returns as soon as one answers.
//   - Lines from a pool that are not Stratum messages are logged and
//     skipped; the session continues.
//   - stratum+ssl URLs handshake TLS before the first Stratum line,
//     verifying against Config.TLS (system roots when nil); a failover list
//     may mix them with stratum+tcp ones.
package worker
