package ledger

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A row refused by a partition constraint raced partition maintenance
// (the crash test once set such a share aside as refused for good): it
// must be retried, while a real refusal of the data is not.
func TestPermanentRefusals(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "23514", Routine: "ExecPartitionCheckEmitError",
			Message: `new row for relation "shares_default" violates partition constraint`}, false},
		{fmt.Errorf("copy shares: %w", &pgconn.PgError{Code: "23514", Message: `new row for relation "shares_default" violates partition constraint`}), false},
		{&pgconn.PgError{Code: "23514", Routine: "ExecConstraints", Message: `new row violates check constraint "x"`}, true},
		{&pgconn.PgError{Code: "22021", Message: "invalid byte sequence"}, true},
		{&pgconn.PgError{Code: "42P01", Message: "relation does not exist"}, false},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection"}, false},
		{fmt.Errorf("connection refused"), false},
	} {
		if got := permanent(c.err); got != c.want {
			t.Errorf("permanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
