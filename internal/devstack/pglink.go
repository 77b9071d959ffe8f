package devstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// LinkedClusterBase is where, as root, StartPostgres keeps the cluster of
// a data dir that the postgres OS user cannot reach (a data dir under
// root's 0700 home, as in most containers): one folder per data dir,
// named after its path, and the data dir becomes a symbolic link to it.
// The user's folders keep their permissions.
const LinkedClusterBase = "/var/lib/hashforge/dev-postgres"

// linkOwnerFile, inside a linked cluster's folder, names the data dir
// (the symbolic link) the cluster belongs to.
const linkOwnerFile = "datadir"

// placeCluster returns where the cluster of data dir dir really lives:
// dir itself, or the target of the link that an earlier start made, or,
// as root when the postgres user cannot traverse dir's parent, a new
// folder under LinkedClusterBase that dir now links to.
func (p *Postgres) placeCluster(ctx context.Context, dir string) (string, error) {
	if target, ok, err := clusterLink(dir); err != nil || ok {
		if ok {
			// The folder may have gone (cleaned by hand): make it again.
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return "", fmt.Errorf("create linked postgres dir: %w", err)
			}
		}
		return target, err
	}
	if p.asUser == "" {
		return dir, nil
	}
	p.reapLinkedOrphans(ctx)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create postgres data dir parent: %w", err)
	}
	if p.command(ctx, "", "test", "-d", parent, "-a", "-x", parent).Run() == nil {
		return dir, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil {
		return "", fmt.Errorf("OS user %s cannot reach the PostgreSQL cluster in %s (a parent directory is not traversable by it); move the cluster, or remove it to have it made again under %s",
			p.asUser, dir, LinkedClusterBase)
	}
	// An empty leftover directory gives way to the link.
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("OS user %s cannot reach %s, and it cannot be replaced by a link to a reachable folder: %w", p.asUser, dir, err)
	}
	sum := sha256.Sum256([]byte(dir))
	home := filepath.Join(LinkedClusterBase, "pg-"+hex.EncodeToString(sum[:8]))
	target := filepath.Join(home, "data")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", fmt.Errorf("create linked postgres dir: %w", err)
	}
	// Every level must be traversable by the postgres user, whatever the
	// umask made of them.
	for d := home; d != "/" && strings.HasPrefix(d, filepath.Dir(LinkedClusterBase)); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			return "", fmt.Errorf("chmod linked postgres dir: %w", err)
		}
	}
	// The link first, then the owner file: the reaper skips a folder
	// without an owner file, so it never takes one being made.
	if err := os.Symlink(target, dir); err != nil {
		return "", fmt.Errorf("link %s to the postgres cluster: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(home, linkOwnerFile), []byte(dir), 0o644); err != nil {
		return "", fmt.Errorf("write linked postgres owner: %w", err)
	}
	p.log.Info("devstack: the postgres OS user cannot reach the data dir; the cluster lives in a folder linked from it",
		"data_dir", dir, "cluster", target)
	return target, nil
}

// clusterLink reports whether dir is a link StartPostgres made, and its
// target.
func clusterLink(dir string) (target string, ok bool, err error) {
	fi, err := os.Lstat(dir)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return "", false, nil
	}
	target, err = os.Readlink(dir)
	if err != nil {
		return "", false, fmt.Errorf("read postgres data dir link: %w", err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(dir), target)
	}
	return target, true, nil
}

// reapLinkedOrphans stops and removes linked clusters whose data dir no
// longer links to them (the data dir was deleted): nothing else would.
func (p *Postgres) reapLinkedOrphans(ctx context.Context) {
	homes, _ := filepath.Glob(filepath.Join(LinkedClusterBase, "pg-*"))
	for _, home := range homes {
		owner, err := os.ReadFile(filepath.Join(home, linkOwnerFile))
		if err != nil {
			continue // being made, or not ours
		}
		target := filepath.Join(home, "data")
		if t, ok, _ := clusterLink(string(owner)); ok && t == target {
			continue
		}
		p.removeCluster(ctx, target, p.log.Info, "devstack: removed a PostgreSQL cluster whose data dir is gone", "data_dir", string(owner))
	}
}

// removeCluster stops the server of cluster dir if it runs and removes
// the cluster (with its linked folder, if it is one).
func (p *Postgres) removeCluster(ctx context.Context, dir string, logf func(string, ...any), msg string, args ...any) error {
	c := &Postgres{DataDir: dir, BinDir: p.BinDir, asUser: p.asUser}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err == nil && c.running(ctx) {
		if err := c.pgCtlStop(ctx); err != nil {
			return err
		}
	}
	rm := dir
	if filepath.Dir(filepath.Dir(dir)) == LinkedClusterBase {
		rm = filepath.Dir(dir)
	}
	if err := os.RemoveAll(rm); err != nil {
		return fmt.Errorf("remove postgres cluster: %w", err)
	}
	logf(msg, append([]any{"cluster", dir}, args...)...)
	return nil
}

// RemovePostgres stops the cluster of data dir dir if a server still runs
// there (a killed dev run) and deletes it, with the linked folder
// StartPostgres may have made for it: `hashforge dev --fresh`.
func RemovePostgres(ctx context.Context, dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve postgres data dir: %w", err)
	}
	target, linked, err := clusterLink(dir)
	if err != nil {
		return err
	}
	if !linked {
		target = dir
	}
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		if linked {
			return os.Remove(dir)
		}
		return nil
	}
	binDir, err := findPostgresBinaries(ctx, log)
	if err != nil {
		return err
	}
	p := &Postgres{BinDir: binDir, log: log}
	if os.Geteuid() == 0 {
		p.asUser = postgresSuperuser
	}
	if err := p.removeCluster(ctx, target, log.Info, "devstack: PostgreSQL cluster removed"); err != nil {
		return err
	}
	if linked {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove postgres data dir link: %w", err)
		}
	}
	return nil
}
