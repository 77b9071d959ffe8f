// Package stratum speaks Stratum V1, the line-delimited JSON-RPC protocol
// miners use to talk to pools: message types and typed parameter parsers, a
// bounded line codec, a server connection loop and a client.
//
// The package knows nothing about pools. The server hands every well-formed
// request to a Handler and gives it a Session to reply on; jobs, share checks
// and accounting live in the pool package.
//
// Wire conventions that are easy to get wrong and are pinned here:
//
//   - Replies always carry "id", "result" and "error"; on success "error" is
//     an explicit null because NiceHash-style clients test for it.
//   - Errors are [code, "message", null] on the wire; the client also accepts
//     the {"code":..,"message":..} objects some pools send.
//   - Notifications carry "id": null.
//   - Request ids may be numbers, strings or null and are echoed verbatim.
//   - In mining.submit, ntime, nonce and version bits are exactly eight hex
//     digits of a big-endian uint32; extranonce2 is hex of raw bytes.
package stratum
