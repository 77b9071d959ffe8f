package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hashforge/hashforge/internal/tlsreload"
)

// envName is the environment variable that sets a flag: --node-url →
// HASHFORGE_NODE_URL. Operators' systemd units and containers rely on it.
func envName(flagName string) string {
	return "HASHFORGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlagSet makes a flag set whose --help lists every flag with its default
// and its environment variable.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: hashforge %s %s\n\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(out, "  --%s\n    \t%s (default %s, env %s)\n", f.Name, f.Usage, def, envName(f.Name))
		})
	}
	return fs
}

// parseFlags applies, in increasing precedence: defaults, the optional
// --config file (KEY=VALUE or flag-name=value lines), HASHFORGE_* environment
// variables, then the command line.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var configFile string
	if fs.Lookup("config") == nil {
		fs.StringVar(&configFile, "config", "", "optional config file of flag-name=value lines")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if configFile == "" {
		configFile = os.Getenv(envName("config"))
	}

	fromFile := map[string]string{}
	if configFile != "" {
		var err error
		if fromFile, err = readConfigFile(configFile); err != nil {
			return err
		}
		for name := range fromFile {
			if fs.Lookup(name) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", configFile, name)
			}
		}
	}
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		src := envName(f.Name)
		if !ok {
			v, ok = fromFile[f.Name]
			src = configFile
		}
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("%s: invalid value %q for --%s: %w", src, v, f.Name, err)
		}
	})
	return firstErr
}

func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s:%d: want name=value", path, n)
		}
		k = strings.TrimSpace(k)
		// Accept both flag names and their environment variable spelling.
		if strings.HasPrefix(k, "HASHFORGE_") {
			k = strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "HASHFORGE_"), "_", "-"))
		}
		out[strings.TrimPrefix(k, "--")] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	return out, nil
}

// multiFlag collects a repeatable flag (e.g. several --url for failover).
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*m = append(*m, p)
		}
	}
	return nil
}

// registerTLSClientFlags declares how `mine` and `loadtest` trust a
// stratum+ssl pool (docs/decisions.md, "Stratum over TLS").
func registerTLSClientFlags(fs *flag.FlagSet, o *tlsreload.ClientOptions) {
	fs.StringVar(&o.CAFile, "tls-ca", "", "stratum+ssl: PEM certificates to trust instead of the system roots (a pool's CA, or hashforge dev's stratum-tls-cert)")
	fs.StringVar(&o.Fingerprint, "tls-fingerprint", "", "stratum+ssl: accept only the pool certificate with this SHA-256 (64 hex digits, colons allowed); with no --tls-ca the chain is not checked, so a self-signed certificate works")
	fs.BoolVar(&o.SkipVerify, "tls-skip-verify", false, "stratum+ssl: accept any certificate (insecure: anyone on the path can pose as the pool)")
}

// clientTLSConfig makes the stratum+ssl client configuration of the
// TLS flags, warning when nothing is verified.
func clientTLSConfig(o tlsreload.ClientOptions, log *slog.Logger) (*tls.Config, error) {
	if o.SkipVerify {
		if o.CAFile != "" || o.Fingerprint != "" {
			return nil, errors.New("--tls-skip-verify with --tls-ca or --tls-fingerprint: choose whether to verify")
		}
		log.Warn("--tls-skip-verify: the pool's certificate is not checked; anyone on the network path can pose as the pool")
	}
	cfg, err := o.Config()
	if err != nil {
		return nil, fmt.Errorf("tls flags: %w", err)
	}
	return cfg, nil
}
