package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/record"
)

// BlockJournal is the pool's own record of every block it found, on local
// disk (a pool.BlockJournal): written before submitblock (the finder is
// known whatever happens next) and again, fsynced, with the node's verdict
// before the miner hears back. The database gets the block afterwards; at
// every start Recover puts whatever the journal holds into PostgreSQL
// (idempotent: RecordBlock never downgrades a row) and empties the
// journal. A block the pool found and a node accepted is money; this is
// what makes no crash, and no database outage, lose one.
//
// The file is a series of records framed like the spool's:
//
//	magic "HFB1" | payload length uint32 LE | CRC-32C(payload) uint32 LE | JSON payload
type BlockJournal struct {
	path  string
	terms payout.Terms
	log   *slog.Logger

	mu sync.Mutex
	f  *os.File
}

const blockJournalFile = "blocks.journal"

var blockMagic = [4]byte{'H', 'F', 'B', '1'}

// journalEntry is one record. Field names are the file format.
type journalEntry struct {
	V       int          `json:"v"`
	Decided bool         `json:"decided"`
	Block   journalBlock `json:"block"`
	Scheme  string       `json:"scheme,omitempty"`
	FeeBPS  int          `json:"fee_bps"`
}

type journalBlock struct {
	Time     time.Time `json:"time"`
	Height   int64     `json:"height"`
	Hash     string    `json:"hash"`
	Reward   int64     `json:"reward"`
	Address  string    `json:"address"`
	Worker   string    `json:"worker"`
	Accepted bool      `json:"accepted"`
	Unknown  bool      `json:"unknown"`
	Verdict  string    `json:"verdict"`
	Header   string    `json:"header,omitempty"`
	Coinbase string    `json:"coinbase,omitempty"`
}

// OpenBlockJournal opens (creating) the journal in dir. terms are the
// payout terms this process finds blocks under; each entry carries them,
// so a block is credited under the terms it was found under even when the
// next start runs with others.
func OpenBlockJournal(dir string, terms payout.Terms, log *slog.Logger) (*BlockJournal, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("block journal dir: %w", err)
	}
	j := &BlockJournal{path: filepath.Join(dir, blockJournalFile), terms: terms, log: log.With("component", "ledger.blockjournal")}
	if err := j.cutTail(); err != nil {
		return nil, err
	}
	if err := j.reopen(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *BlockJournal) reopen() error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open block journal: %w", err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		f.Close()
		return err
	}
	j.f = f
	return nil
}

// cutTail removes what follows the last whole record (a write the process
// died in), so that new entries are never appended behind it where no
// reader would find them. Anything more than a torn record is kept in a
// copy beside the journal for an operator.
func (j *BlockJournal) cutTail() error {
	st, err := os.Stat(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("block journal: %w", err)
	}
	_, good, err := readJournal(j.path)
	if err != nil {
		return err
	}
	if good == st.Size() {
		return nil
	}
	if st.Size()-good > recordHeaderLen+64<<10 {
		data, err := os.ReadFile(j.path)
		if err != nil {
			return fmt.Errorf("block journal: %w", err)
		}
		keep := fmt.Sprintf("%s.%d.damaged", j.path, time.Now().UnixNano())
		if err := writeFileSync(keep, data); err != nil {
			return fmt.Errorf("block journal: keep damaged copy: %w", err)
		}
		j.log.Error("block journal damaged after its last whole entry; a copy is kept for inspection", "copy", keep, "good_bytes", good, "size", st.Size())
	}
	if err := os.Truncate(j.path, good); err != nil {
		return fmt.Errorf("block journal: cut torn tail: %w", err)
	}
	return nil
}

// Path is the journal file, for operators' messages.
func (j *BlockJournal) Path() string { return j.path }

// Close closes the file.
func (j *BlockJournal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// JournalBlock appends b; decided entries are fsynced before it returns.
// An undecided entry (before submitblock) is only written: it survives
// the process being killed, and the block is not held back by a disk.
func (j *BlockJournal) JournalBlock(b record.Block, decided bool) error {
	e := journalEntry{V: 1, Decided: decided, Block: journalBlock{
		Time: b.Time, Height: b.Height, Hash: strings.ToLower(b.Hash), Reward: b.Reward,
		Address: b.Address, Worker: b.Worker, Accepted: b.Accepted, Unknown: b.Unknown,
		Verdict: b.Verdict, Header: b.Header, Coinbase: b.Coinbase,
	}, Scheme: string(j.terms.Scheme), FeeBPS: j.terms.FeeBPS}
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("block journal: encode: %w", err)
	}
	rec := make([]byte, recordHeaderLen+len(payload))
	copy(rec[0:4], blockMagic[:])
	binary.LittleEndian.PutUint32(rec[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[8:12], crc32.Checksum(payload, castagnoli))
	copy(rec[recordHeaderLen:], payload)

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		if err := j.reopen(); err != nil {
			return err
		}
	}
	if _, err := j.f.Write(rec); err != nil {
		return fmt.Errorf("block journal: write: %w", err)
	}
	if decided {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("block journal: fsync: %w", err)
		}
	}
	return nil
}

// blockRecorder is where Recover puts journaled blocks: a TermsSink (the
// terms the block was found under) or the plain ledger.
type blockRecorder interface {
	RecordBlock(ctx context.Context, b record.Block) error
}

// readJournal returns the entries of the file up to its first damaged or
// torn record, and the offset after the last whole one.
func readJournal(path string) ([]journalEntry, int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read block journal: %w", err)
	}
	var out []journalEntry
	var off int64
	for int64(len(data))-off >= recordHeaderLen {
		h := data[off:]
		if [4]byte(h[0:4]) != blockMagic {
			break
		}
		n := int64(binary.LittleEndian.Uint32(h[4:8]))
		if int64(len(h)) < recordHeaderLen+n {
			break
		}
		payload := h[recordHeaderLen : recordHeaderLen+n]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(h[8:12]) {
			break
		}
		var e journalEntry
		if err := json.Unmarshal(payload, &e); err != nil {
			break
		}
		out = append(out, e)
		off += recordHeaderLen + n
	}
	return out, off, nil
}

// Recover puts every block in the journal into the ledger, then drops the
// entries it recorded from the journal. A block journaled before
// submitblock with no verdict after it (the process died in between) is
// recorded as unknown, for the payout process to settle by the chain. It
// returns how many blocks it recorded.
func (j *BlockJournal) Recover(ctx context.Context, l *Ledger) (int, error) {
	entries, upTo, err := readJournal(j.path)
	if err != nil {
		return 0, err
	}
	// The latest entry per hash wins: a verdict over the intent.
	latest := map[string]journalEntry{}
	var order []string
	for _, e := range entries {
		if _, ok := latest[e.Block.Hash]; !ok {
			order = append(order, e.Block.Hash)
		}
		if prev, ok := latest[e.Block.Hash]; ok && prev.Decided && !e.Decided {
			continue
		}
		latest[e.Block.Hash] = e
	}
	for _, h := range order {
		e := latest[h]
		b := record.Block{
			Time: e.Block.Time, Height: e.Block.Height, Hash: e.Block.Hash, Reward: e.Block.Reward,
			Address: e.Block.Address, Worker: e.Block.Worker, Accepted: e.Block.Accepted,
			Unknown: e.Block.Unknown, Verdict: e.Block.Verdict,
		}
		if !e.Decided {
			b.Accepted, b.Unknown = false, true
			b.Verdict = "unknown: the pool stopped before the node answered submitblock"
		}
		var sink blockRecorder = l
		if e.Scheme != "" {
			if ts, err := l.TermsBlockSink(payout.Terms{Scheme: payout.Scheme(e.Scheme), FeeBPS: e.FeeBPS}); err == nil {
				sink = ts
			}
		}
		if err := sink.RecordBlock(ctx, b); err != nil {
			return 0, fmt.Errorf("recover journaled block %s: %w", h, err)
		}
	}
	if err := j.dropPrefix(upTo); err != nil {
		return len(order), err
	}
	if len(order) > 0 {
		j.log.Info("block journal recorded in the ledger", "blocks", len(order))
	}
	return len(order), nil
}

// dropPrefix removes the first n bytes of the journal (entries now in the
// ledger), keeping whatever was appended after them, by writing the rest
// to a new file and renaming it over the old.
func (j *BlockJournal) dropPrefix(n int64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	src, err := os.Open(j.path)
	if err != nil {
		return fmt.Errorf("compact block journal: %w", err)
	}
	defer src.Close()
	if _, err := src.Seek(n, io.SeekStart); err != nil {
		return fmt.Errorf("compact block journal: %w", err)
	}
	rest, err := io.ReadAll(src)
	if err != nil {
		return fmt.Errorf("compact block journal: %w", err)
	}
	tmp := j.path + ".tmp"
	if err := writeFileSync(tmp, rest); err != nil {
		return fmt.Errorf("compact block journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("compact block journal: %w", err)
	}
	if err := syncDir(filepath.Dir(j.path)); err != nil {
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f = nil
	return j.reopen()
}
