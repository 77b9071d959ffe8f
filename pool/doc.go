// Package pool is the pool core: it turns node block templates into Stratum
// jobs, speaks Stratum V1 to miners (Server implements stratum.Handler),
// checks shares, adjusts each session's difficulty, and assembles and
// submits blocks.
//
// Decisions a reader may look for:
//
//   - Jobs. One job per template. A template on a new previous block is a
//     clean job broadcast at once; templates on the same block are
//     coalesced to at most one non-clean job per Config.JobRefresh (default
//     30 s), the newest winning. Job ids are a per-boot random 32-bit prefix
//     plus a counter, so a restarted pool never mistakes an old id for a
//     current job. The last DefaultJobBookSize jobs are kept: a share for a
//     kept job on a superseded block is "stale job" (21), for any other
//     unknown id "job not found" (21).
//   - Coinbase. scriptSig = BIP 34 height, coinbaseaux flags, pool tag, one
//     push holding extranonce1 (4 bytes: Config.NodeID, then a counter) and
//     extranonce2 (Config.Extranonce2Size, default 8). The tag is cut, and
//     flags that cannot fit are dropped, to keep the scriptSig within 100
//     bytes. Outputs are a job parameter (PoolOutputs for shared rewards);
//     coinb2 depends on nothing but them, ready for per-session payouts.
//   - Difficulty. Targets are 256-bit integers (pow.Target); difficulties are
//     converted exactly, once per change. A session's difficulty never
//     exceeds the network's: the network target always caps the share
//     target, so a block is never refused as low difficulty. A share counts
//     at the easier of the difficulty its job was sent with and the
//     session's current one, and is credited at that difficulty.
//   - Vardiff. Retarget after 30 shares or 30 s, whichever first (silent
//     miners are retargeted on job broadcasts), toward Config.ShareInterval,
//     keeping the difficulty while the observed interval is within
//     [2/3, 3/2] of the target, moving by ×0.5…×4 per step, floored at
//     Config.MinDifficulty and the miner's own minimum (mining.configure
//     minimum-difficulty or mining.suggest_difficulty). A change is sent as
//     mining.set_difficulty followed by the current job again with
//     clean_jobs=false.
//   - Version rolling (BIP 310). The granted mask is the miner's request ∧
//     Config.VersionMask. Submitted version bits outside it are refused (20),
//     even when they equal the job's own bits.
//   - Sessions. A mining.subscribe session id is the extranonce1 hex; a
//     miner reconnecting within 10 minutes gets its extranonce1 back if no
//     one holds it, and a released extranonce1 is not reissued to anyone
//     else in that time.
//   - Blocks. A share meeting the network target is assembled and submitted
//     before the miner's reply and before the share reaches the ShareSink.
//     A submitblock that gets no answer (transport error, RPC error) is
//     retried, five tries over about three seconds, still before the reply;
//     the node's verdict ("rejected: …", "high-hash", …) is final, except
//     that a duplicate heard on a retry means an earlier try got through.
//     No answer after the retries, Bitcoin Core's "inconclusive" and
//     "duplicate-inconclusive", and a duplicate on the first try are not
//     rejections: the block is recorded Unknown, for the payout process to
//     look up in the chain by hash. Found and accepted blocks are logged at
//     INFO; a refused block at ERROR.
//     The block row (BlockSink.RecordBlock) is written in the background,
//     retried with backoff while the ledger fails and kept in memory
//     meanwhile; when Run stops, blocks still unrecorded get a few seconds,
//     then each is logged ("FOUND BLOCK NOT RECORDED", with hash, height,
//     reward and finder) for an operator to enter. Once the node accepted a
//     block, every job on its previous block is stale (21) at once, without
//     waiting for the node's next template. Stats.BlocksFound counts blocks
//     the node accepted.
//   - A difficulty the miner asks for after authorizing
//     (mining.suggest_difficulty, configure's minimum-difficulty) applies at
//     once: mining.set_difficulty, then the current job again without
//     clean_jobs, as after a vardiff retarget.
package pool
