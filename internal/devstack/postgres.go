package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// DataDir holds the cluster. An existing cluster there is reused (dev
	// restarts keep their data); an empty DataDir means a temporary cluster
	// that Stop deletes.
	DataDir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// PortHint, when Port is 0, is a port to take if it is free once a
	// server left in DataDir by a killed run is stopped (a restart that
	// keeps its ports); otherwise a free one is picked.
	PortHint int
	// Fast turns durability off (fsync, synchronous_commit,
	// full_page_writes). A crash can then corrupt the cluster: tests only.
	Fast bool
	// Logger receives progress lines; nil means slog.Default().
	Logger *slog.Logger
}

// Postgres is a running private PostgreSQL cluster.
type Postgres struct {
	DataDir string
	Port    int
	BinDir  string // where initdb, pg_ctl and postgres were found

	log      *slog.Logger
	asUser   string // OS user running the server, "" for the current user
	temp     bool   // DataDir was created by StartPostgres and is removed by Stop
	stopOnce sync.Once
	stopErr  error
}

// postgresSuperuser is the role initdb creates; trust auth on loopback only.
const postgresSuperuser = "postgres"

// StartPostgres starts (creating it first if needed) a private cluster that
// listens on 127.0.0.1 only. As root the server runs as the OS user
// "postgres", because initdb and postgres refuse to run as root.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	binDir, err := findPostgresBinaries(ctx, log)
	if err != nil {
		return nil, err
	}
	p := &Postgres{BinDir: binDir, log: log, Port: opts.Port}
	if os.Geteuid() == 0 {
		p.asUser = postgresSuperuser
	}

	if opts.DataDir == "" {
		p.reapOrphans(ctx)
		// A parent we create 0755 keeps the cluster reachable by the
		// postgres user even when TMPDIR's own entries are 0700.
		parent, err := os.MkdirTemp("", tempClusterPrefix)
		if err != nil {
			return nil, fmt.Errorf("create postgres temp dir: %w", err)
		}
		if err := os.Chmod(parent, 0o755); err != nil {
			os.RemoveAll(parent)
			return nil, fmt.Errorf("chmod postgres temp dir: %w", err)
		}
		owner := filepath.Join(parent, ownerFile)
		if err := os.WriteFile(owner, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			os.RemoveAll(parent)
			return nil, fmt.Errorf("write postgres temp cluster owner: %w", err)
		}
		opts.DataDir = filepath.Join(parent, "data")
		p.temp = true
	}
	p.DataDir, err = filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("resolve postgres data dir: %w", err)
	}
	if !p.temp {
		if p.DataDir, err = p.placeCluster(ctx, p.DataDir); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Postgres, error) {
		if p.temp {
			os.RemoveAll(filepath.Dir(p.DataDir))
		}
		return nil, err
	}

	if err := p.prepareDataDir(ctx); err != nil {
		return fail(err)
	}
	if _, err := os.Stat(filepath.Join(p.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("devstack: creating PostgreSQL cluster", "dir", p.DataDir)
		out, err := p.command(ctx, "initdb", "-D", p.DataDir, "-A", "trust", "-U", postgresSuperuser,
			"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
		if err != nil {
			return fail(fmt.Errorf("initdb %s: %w\n%s", p.DataDir, err, out))
		}
	} else if err != nil {
		return fail(fmt.Errorf("inspect postgres data dir: %w", err))
	} else if p.running(ctx) {
		// Left over from a dev run that was killed: it may listen on
		// another port, so stop it and start it the way we want.
		log.Warn("devstack: stopping a PostgreSQL server left running in the data dir", "dir", p.DataDir)
		if err := p.pgCtlStop(ctx); err != nil {
			return fail(err)
		}
	}

	if p.Port == 0 {
		p.Port = portIfFree(opts.PortHint)
	}
	if p.Port == 0 {
		if p.Port, err = freePort(); err != nil {
			return fail(err)
		}
	}
	if err := p.pgCtlStart(ctx, opts.Fast); err != nil {
		return fail(err)
	}
	log.Info("devstack: PostgreSQL started", "port", p.Port, "dir", p.DataDir)
	return p, nil
}

// Temporary clusters live in TMPDIR/hashforge-pg-*/data, next to a file
// naming the process that owns them.
const (
	tempClusterPrefix = "hashforge-pg-"
	ownerFile         = "owner.pid"
)

// reapOrphans stops and deletes temporary clusters whose owner died without
// stopping them. pg_ctl detaches the server, so nothing else ends it when a
// test binary panics on its -timeout or is killed.
func (p *Postgres) reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempClusterPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // being created, or not ours to judge
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		orphan := &Postgres{DataDir: filepath.Join(dir, "data"), BinDir: p.BinDir, asUser: p.asUser}
		if orphan.running(ctx) {
			if err := orphan.pgCtlStop(ctx); err != nil {
				p.log.Warn("devstack: cannot stop orphaned PostgreSQL cluster", "dir", dir, "err", err)
				continue
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			p.log.Warn("devstack: cannot remove orphaned PostgreSQL cluster", "dir", dir, "err", err)
			continue
		}
		p.log.Info("devstack: removed an orphaned PostgreSQL cluster", "dir", dir, "owner_pid", pid)
	}
}

// prepareDataDir creates the data dir and, as root, hands it to the postgres
// user and checks that user can reach it through every parent directory.
func (p *Postgres) prepareDataDir(ctx context.Context) error {
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return fmt.Errorf("create postgres data dir: %w", err)
	}
	if p.asUser == "" {
		return nil
	}
	u, err := user.Lookup(p.asUser)
	if err != nil {
		return fmt.Errorf("running as root needs the %q OS user (install the postgresql package): %w", p.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(p.DataDir, uid, gid); err != nil {
		return fmt.Errorf("chown postgres data dir to %s: %w", p.asUser, err)
	}
	if err := p.command(ctx, "", "test", "-w", p.DataDir, "-a", "-x", p.DataDir).Run(); err != nil {
		return fmt.Errorf("OS user %s cannot reach %s (every parent directory must be traversable by it, e.g. chmod o+x): %w",
			p.asUser, p.DataDir, err)
	}
	return nil
}

// command builds a command that runs as the server's OS user. bin names a
// PostgreSQL program in BinDir; an empty bin runs args[0] from PATH.
func (p *Postgres) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if bin != "" {
		args = append([]string{filepath.Join(p.BinDir, bin)}, args...)
	}
	if p.asUser != "" {
		args = append([]string{"runuser", "-u", p.asUser, "--"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.SysProcAttr = childSysProcAttr()
	cmd.Env = serverEnv()
	return cmd
}

func (p *Postgres) running(ctx context.Context) bool {
	return p.command(ctx, "pg_ctl", "status", "-D", p.DataDir).Run() == nil
}

func (p *Postgres) logPath() string { return filepath.Join(p.DataDir, "postgres.log") }

func (p *Postgres) pgCtlStart(ctx context.Context, fast bool) error {
	opts := []string{
		"-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1",
	}
	// A Unix socket path is limited to 107 bytes; deep dev dirs get TCP only.
	if len(p.DataDir)+len("/.s.PGSQL.65535") < 100 {
		opts = append(opts, "-k", shellQuote(p.DataDir))
	} else {
		opts = append(opts, "-c", "unix_socket_directories=''")
	}
	if fast {
		opts = append(opts, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// pg_ctl hands -o to /bin/sh, hence the quoting above.
	out, err := p.command(ctx, "pg_ctl", "-D", p.DataDir, "-l", p.logPath(),
		"-o", strings.Join(opts, " "), "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		return withLog(fmt.Errorf("pg_ctl start: %w\n%s", err, out), p.logPath())
	}
	return nil
}

func (p *Postgres) pgCtlStop(ctx context.Context) error {
	out, err := p.command(ctx, "pg_ctl", "-D", p.DataDir, "-m", "fast", "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// URL returns the connection URL of database db on this cluster.
func (p *Postgres) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(postgresSuperuser),
		Host:     fmt.Sprintf("127.0.0.1:%d", p.Port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name unless it exists and returns its URL.
// It is idempotent so that `hashforge dev` can call it on every start.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to private postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		err = nil
	}
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return p.URL(name), nil
}

// DropDatabase drops database name, closing any sessions still using it.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to private postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// LogPath is the server log, worth reading when something went wrong.
func (p *Postgres) LogPath() string { return p.logPath() }

// Stop shuts the server down (fast mode: sessions are disconnected) and
// removes a temporary cluster. Only the first call does anything.
func (p *Postgres) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		p.stopErr = p.pgCtlStop(ctx)
		if p.temp {
			if err := os.RemoveAll(filepath.Dir(p.DataDir)); err != nil && p.stopErr == nil {
				p.stopErr = fmt.Errorf("remove postgres temp dir: %w", err)
			}
		}
		if p.stopErr == nil {
			p.log.Info("devstack: PostgreSQL stopped", "port", p.Port)
		}
	})
	return p.stopErr
}

// findPostgresBinaries returns the directory holding initdb and pg_ctl:
// PATH first, then the highest version under /usr/lib/postgresql (Debian
// keeps server binaries off PATH). As root on a Debian-like system it
// installs the postgresql package when nothing is found.
func findPostgresBinaries(ctx context.Context, log *slog.Logger) (string, error) {
	if dir := lookPostgresBinaries(); dir != "" {
		return dir, nil
	}
	if os.Geteuid() != 0 {
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found in PATH or /usr/lib/postgresql/*/bin: install PostgreSQL ≥ 13 (Debian/Ubuntu: apt-get install postgresql)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found and apt-get is unavailable: install PostgreSQL ≥ 13 with your package manager")
	}
	log.Info("devstack: PostgreSQL not found, installing it with apt-get (this takes a minute)")
	if err := aptInstall(ctx, log, func() bool { return lookPostgresBinaries() != "" }, false, "postgresql"); err != nil {
		return "", err
	}
	if dir := lookPostgresBinaries(); dir != "" {
		return dir, nil
	}
	return "", errors.New("installed the postgresql package but still found no initdb/pg_ctl")
}

func lookPostgresBinaries() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		// Resolve symlinks: initdb and postgres live next to the real file.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	type cand struct {
		version int
		dir     string
	}
	var cands []cand
	for _, m := range matches {
		dir := filepath.Dir(m)
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		if err != nil || !isExecutable(filepath.Join(dir, "initdb")) {
			continue
		}
		cands = append(cands, cand{v, dir})
	}
	if len(cands) == 0 {
		return ""
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].version > cands[j].version })
	return cands[0].dir
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// serverEnv is the caller's environment minus PG* and locale variables: the
// server inherits pg_ctl's environment, and a developer's PGDATA, PGPORT or
// exotic locale must not change how the private cluster starts.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Pause stops the server without removing anything, for tests of a
// database outage; Resume starts it again on the same port.
func (p *Postgres) Pause(ctx context.Context) error { return p.pgCtlStop(ctx) }

// Resume starts a paused server again.
func (p *Postgres) Resume(ctx context.Context) error { return p.pgCtlStart(ctx, true) }
