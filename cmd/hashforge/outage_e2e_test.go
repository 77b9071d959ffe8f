package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/internal/fixturenode"
	"github.com/hashforge/hashforge/loadtest"
)

// TestDatabaseAwayUnderLoad stops PostgreSQL while the load generator
// mines through a real serve (fixture templates: shares are not blocks),
// and runs a whole load test while it is down: every share is still
// answered, from the spool, none waits for the database. After the
// database is back, every share the load generator heard accepted, before
// and during the outage, is a row exactly once. (docs/scaling.md has the
// same with 1000 miners and a 60 s outage.)
func TestDatabaseAwayUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true, Logger: testLogger(0)})
	devtest.Require(t, "start a private PostgreSQL of this test's own", err)
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	dbURL, err := pg.CreateDatabase(ctx, "outage")
	if err != nil {
		t.Fatal(err)
	}
	_, cfg := fixtureServe(ctx, t, fixturenode.Options{BlockInterval: 2 * time.Second, Logger: testLogger(slog.LevelInfo)}, dbURL, "/outage/", 0x45)
	poolAddr := cfg.PoolAddress
	l := startServeLog(ctx, t, cfg, testLogger(slog.LevelInfo))
	url := "stratum+tcp://" + l.Stratum.String()
	run := func(worker string, d time.Duration) loadtest.Report {
		t.Helper()
		rep, err := loadtest.Run(ctx, loadtest.Config{URL: url, Miners: 100, Duration: d, Rate: 10,
			User: poolAddr + "." + worker, Mode: loadtest.ModeAccept, DrainTimeout: 10 * time.Second})
		logReport(t, worker, rep)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Sessions != 100 || rep.Disconnects != 0 || rep.Unanswered != 0 || rep.Accepted == 0 {
			t.Errorf("%s: %d sessions, %d disconnects, %d unanswered, %d accepted", worker, rep.Sessions, rep.Disconnects, rep.Unanswered, rep.Accepted)
		}
		return rep
	}
	// Load across the moment the database goes away, then load with it
	// away the whole time.
	across := make(chan loadtest.Report, 1)
	go func() { across <- run("across", 6*time.Second) }()
	time.Sleep(2 * time.Second)
	if err := pg.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	acrossRep := <-across
	during := run("during", 4*time.Second)
	if err := pg.Resume(ctx); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, c := range []struct {
		worker string
		want   int64
	}{{"across", acrossRep.Accepted}, {"during", during.Accepted}} {
		var rows, distinct int64
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT (s.time, s.worker_id, s.job_id, s.extranonce1, s.actual_difficulty))
				FROM shares s JOIN workers w ON w.id = s.worker_id WHERE w.address = $1 AND w.name LIKE $2`,
				poolAddr, c.worker+"%").Scan(&rows, &distinct)
			if err != nil {
				t.Fatal(err)
			}
			if rows >= c.want || time.Now().After(deadline) {
				break
			}
		}
		if rows != c.want || distinct != rows {
			t.Errorf("%s: %d rows (%d distinct) for %d accepted replies", c.worker, rows, distinct, c.want)
		}
	}
}
