package sv2

import (
	"reflect"
	"testing"

	"github.com/hashforge/hashforge/stratum2"
)

func TestCoalesceAcks(t *testing.T) {
	ok := func(ch, seq uint32) *stratum2.SubmitSharesSuccess {
		return &stratum2.SubmitSharesSuccess{ChannelID: ch, LastSequenceNumber: seq, NewSubmitsAcceptedCount: 1, NewSharesSum: 2}
	}
	bad := &stratum2.SubmitSharesError{ChannelID: 1, SequenceNumber: 4, ErrorCode: stratum2.ErrCodeStaleShare}
	job := &stratum2.SetTarget{ChannelID: 1}
	got := coalesceAcks([]stratum2.Message{ok(1, 1), ok(1, 2), ok(1, 3), bad, ok(1, 5), ok(2, 1), ok(2, 2), job, ok(1, 6)})
	want := []stratum2.Message{
		&stratum2.SubmitSharesSuccess{ChannelID: 1, LastSequenceNumber: 3, NewSubmitsAcceptedCount: 3, NewSharesSum: 6},
		bad,
		ok(1, 5),
		&stratum2.SubmitSharesSuccess{ChannelID: 2, LastSequenceNumber: 2, NewSubmitsAcceptedCount: 2, NewSharesSum: 4},
		job,
		ok(1, 6),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}
