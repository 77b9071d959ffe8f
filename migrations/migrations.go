// Package migrations holds the database schema as numbered SQL files.
//
// Files are named NNNN_description.sql and applied in lexical order, each in
// its own transaction, by ledger.Migrate. An applied file must never be
// edited: the runner records a checksum and refuses to start when a file it
// already applied has changed. Fix mistakes with a new, higher-numbered file.
package migrations

import "embed"

// FS holds every migration file, embedded so the binary needs nothing on disk.
//
//go:embed *.sql
var FS embed.FS
