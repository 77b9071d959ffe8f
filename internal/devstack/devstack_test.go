package devstack_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

func TestPostgresFreshDatabases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url1 := devtest.Postgres(t)
	url2 := devtest.Postgres(t)
	if url1 == url2 {
		t.Fatalf("two calls returned the same database %s", url1)
	}
	conn, err := pgx.Connect(ctx, url1)
	if err != nil {
		t.Fatalf("connect %s: %v", url1, err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatalf("count tables: %v", err)
	}
	if tables != 0 {
		t.Fatalf("fresh database has %d tables", tables)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatalf("server version: %v", err)
	}
	if version < 130000 {
		t.Fatalf("server version %d, need PostgreSQL ≥ 13", version)
	}
}

// TestPostgresReuseDataDir is the `hashforge dev` restart path: the second
// start finds the cluster, keeps its data and CreateDatabase is idempotent.
func TestPostgresReuseDataDir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parent := t.TempDir()
	// t.TempDir and its parent are 0700; as root the postgres user must
	// traverse them.
	for _, d := range []string{parent, filepath.Dir(parent)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(parent, "pg")

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dir, Fast: true})
	devtest.Require(t, "start private PostgreSQL", err)
	url, err := pg.CreateDatabase(ctx, "hashforge")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, ctx, url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
	if err := pg.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatalf("restart on existing cluster: %v", err)
	}
	defer pg.Stop(ctx)
	url, err = pg.CreateDatabase(ctx, "hashforge")
	if err != nil {
		t.Fatalf("CreateDatabase on existing database: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("data after restart: x=%d err=%v", x, err)
	}
}

// TestPostgresReapsOrphans is the test binary that died on its -timeout:
// its temporary cluster kept running, and the next start must end it.
func TestPostgresReapsOrphans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orphan, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true})
	devtest.Require(t, "start private PostgreSQL", err)
	defer orphan.Stop(ctx)
	dead := osexec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	parent := filepath.Dir(orphan.DataDir)
	if err := os.WriteFile(filepath.Join(parent, "owner.pid"), []byte(strconv.Itoa(dead.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop(ctx)
	if _, err := os.Stat(parent); !os.IsNotExist(err) {
		t.Fatalf("orphaned cluster dir still there: %v", err)
	}
	if conn, err := pgx.Connect(ctx, orphan.URL("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("orphaned cluster still accepts connections")
	}
}

func execSQL(t *testing.T, ctx context.Context, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestBtcdRegtest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := devtest.Btcd(t, devstack.BtcdOptions{})
	if b.Network != "regtest" || !strings.HasPrefix(b.MiningAddr, "bcrt1q") || b.MiningKey == "" {
		t.Fatalf("network %q mining addr %q key set %v", b.Network, b.MiningAddr, b.MiningKey != "")
	}
	if n := rpc[int64](t, ctx, b, "getblockcount"); n != 1 {
		t.Fatalf("getblockcount = %d after start, want 1 (the initial block)", n)
	}
	tmpl := rpc[struct {
		Height int64  `json:"height"`
		Bits   string `json:"bits"`
	}](t, ctx, b, "getblocktemplate", map[string]any{"rules": []string{"segwit"}})
	if tmpl.Height != 2 || tmpl.Bits != "207fffff" {
		t.Fatalf("template height %d bits %s, want 2 and 207fffff", tmpl.Height, tmpl.Bits)
	}
	hashes, err := b.Generate(ctx, 3)
	if err != nil || len(hashes) != 3 {
		t.Fatalf("generate 3: %v %v", hashes, err)
	}
	if best := rpc[string](t, ctx, b, "getbestblockhash"); best != hashes[2] {
		t.Fatalf("best block %s, want last generated %s", best, hashes[2])
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-b.Exited():
	default:
		t.Fatal("btcd still running after Stop")
	}
}

func TestBtcdSimnet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	if !strings.HasPrefix(b.MiningAddr, "sb1q") {
		t.Fatalf("simnet mining address %q", b.MiningAddr)
	}
	if n := rpc[int64](t, ctx, b, "getblockcount"); n != 1 {
		t.Fatalf("getblockcount = %d, want 1", n)
	}
}

func TestBtcdRejectsUnknownNetwork(t *testing.T) {
	_, err := devstack.StartBtcd(context.Background(), devstack.BtcdOptions{Network: "mainnet"})
	if err == nil || !strings.Contains(err.Error(), "mainnet") {
		t.Fatalf("err = %v, want unsupported network", err)
	}
}

// rpc is a bare JSON-RPC call, independent of devstack's own client, so
// the test checks what a real client sees at RPCURL.
func rpc[T any](t *testing.T, ctx context.Context, b *devstack.Btcd, method string, params ...any) T {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.RPCURL(), strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var r struct {
		Result T               `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s: decode: %v", method, err)
	}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		t.Fatalf("%s: %s", method, r.Error)
	}
	return r.Result
}

// TestPostgresInPrivateFolder is `make run` from root's home (mode 0700):
// the cluster of a data dir the postgres OS user cannot reach lives in a
// folder linked from it, survives a restart, the private folder keeps its
// permissions, and RemovePostgres takes it all away.
func TestPostgresInPrivateFolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, ".hashforge-dev", "postgres")

	pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dir, Fast: true})
	devtest.Require(t, "start private PostgreSQL", err)
	t.Cleanup(func() {
		if err := devstack.RemovePostgres(context.Background(), dir, nil); err != nil {
			t.Error(err)
		}
	})
	url, err := pg.CreateDatabase(ctx, "hashforge")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, ctx, url, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("private folder after start: %v %v, want its mode 0700 unchanged", fi.Mode(), err)
	}
	if os.Geteuid() == 0 {
		if target, err := os.Readlink(dir); err != nil || !strings.HasPrefix(target, devstack.LinkedClusterBase+"/") || pg.DataDir != target {
			t.Fatalf("as root the data dir links to %q (%v), the cluster runs in %q; want a folder under %s", target, err, pg.DataDir, devstack.LinkedClusterBase)
		}
	}

	pg, err = devstack.StartPostgres(ctx, devstack.PostgresOptions{DataDir: dir, Fast: true})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	url = pg.URL("hashforge")
	var x int
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		err = conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x)
		conn.Close(ctx)
	}
	if err != nil || x != 7 {
		t.Fatalf("data after restart: x=%d err=%v", x, err)
	}
	// Left running, as by a killed dev run: RemovePostgres stops it.
	real := pg.DataDir
	if err := devstack.RemovePostgres(ctx, dir, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, real} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s still there after RemovePostgres: %v", p, err)
		}
	}
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Fatal("removed cluster still accepts connections")
	}
}

// TestBtcdKeepsChain is the dev stack's restart: a node started on a data
// dir with a chain keeps it, mines no extra block on a recent tip, and
// first stops a node still running there (left by a killed run).
func TestBtcdKeepsChain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	first := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet", DataDir: dir})
	if _, err := first.Generate(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, firstPort, _ := net.SplitHostPort(first.RPCHost)
	hint, _ := strconv.Atoi(firstPort)
	second := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet", DataDir: dir, MiningAddr: first.MiningAddr, PortHint: hint})
	select {
	case <-first.Exited():
	default:
		t.Fatal("the node left running in the data dir was not stopped")
	}
	if n := rpc[int64](t, ctx, second, "getblockcount"); n != 3 {
		t.Fatalf("getblockcount after restart = %d, want the 3 kept (1 initial + 2)", n)
	}
	if second.RPCHost != first.RPCHost {
		t.Errorf("restart listens on %s, want the hinted %s, free once the leftover stopped", second.RPCHost, first.RPCHost)
	}

	// A hinted port someone else holds gives way to a free one.
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	other := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet", PortHint: held.Addr().(*net.TCPAddr).Port})
	if other.RPCHost == held.Addr().String() {
		t.Errorf("btcd took the hinted port %s that another process holds", other.RPCHost)
	}
}

// TestBtcdPeered is what the several-nodes tests stand on: two regtest
// nodes peered over loopback see each other's blocks, both ways, and the
// second, started on a bare genesis, syncs the first's chain.
func TestBtcdPeered(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := devtest.Btcd(t, devstack.BtcdOptions{Listen: true})
	if a.P2PHost == "" {
		t.Fatal("Listen set but no P2PHost")
	}
	b := devtest.Btcd(t, devstack.BtcdOptions{Listen: true, NoInitialBlock: true, AddPeers: []string{a.P2PHost}})
	waitBest := func(n *devstack.Btcd, want string) {
		t.Helper()
		for {
			if rpc[string](t, ctx, n, "getbestblockhash") == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("node %s never reached block %s; its log:\n%s", n.RPCHost, want, n.LogTail(30))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitBest(b, rpc[string](t, ctx, a, "getbestblockhash"))
	fromA, err := a.Generate(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	waitBest(b, fromA[1])
	fromB, err := b.Generate(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitBest(a, fromB[0])
	if n := rpc[int64](t, ctx, a, "getblockcount"); n != 4 {
		t.Fatalf("getblockcount %d on the first node, want 4 (initial block, 2 from it, 1 from its peer)", n)
	}
}
