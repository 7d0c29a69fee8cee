package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/loadgen"
)

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "generate" {
		return runBenchGenerate(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("ward bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080/fhir", "FHIR base URL of the server under load")
	token := fs.String("token", "", "bearer token (or use --username and --password-stdin)")
	username := fs.String("username", "", "log in as this user to get a token")
	passwordStdin := fs.Bool("password-stdin", false, "read the password for --username from standard input")
	mix := fs.String("mix", "create", "create, read, mixed, search or transaction")
	entries := fs.Int("bundle-entries", 100, "transaction mix: entries per Bundle (a multiple of 4)")
	paths := fs.String("paths", "", "search mix: file of query paths relative to --url, one per line (see 'ward bench generate')")
	conc := fs.Int("concurrency", 64, "concurrent clients")
	dur := fs.Duration("duration", 30*time.Second, "measured duration")
	warm := fs.Duration("warmup", 3*time.Second, "unmeasured warm-up")
	preload := fs.Int("preload", 2000, "patients created before a read or mixed run")
	ratio := fs.Float64("read-ratio", 0.8, "share of reads in the mixed run")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		return err
	}
	var ps []string
	if m == loadgen.MixSearch {
		if *paths == "" {
			return errors.New("--mix search needs --paths FILE")
		}
		if ps, err = loadgen.ReadPaths(*paths); err != nil {
			return err
		}
	}
	if *token == "" && *username != "" {
		if !*passwordStdin {
			return errors.New("--username needs --password-stdin")
		}
		pw, err := io.ReadAll(io.LimitReader(stdin, 4096))
		if err != nil {
			return err
		}
		*token, err = login(ctx, *base, *username, strings.TrimRight(string(pw), "\r\n"))
		if err != nil {
			return err
		}
	}
	if *token == "" {
		return errors.New("--token (or --username with --password-stdin) is required")
	}
	rep, err := loadgen.Run(ctx, loadgen.Options{
		BaseURL: *base, Token: *token, Mix: m, Concurrency: *conc, Duration: *dur, Warmup: *warm,
		Preload: *preload, ReadRatio: *ratio, Seed: 1, Paths: ps, BundleEntries: *entries,
	})
	if rep == nil {
		return err
	}
	// An interrupted run still reports what it measured.
	if *asJSON {
		b, jerr := rep.JSON()
		if jerr != nil {
			return jerr
		}
		fmt.Fprintln(stdout, string(b))
	} else {
		rep.Print(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Requests > 0 && rep.Errors == rep.Requests {
		return errors.New("every request failed")
	}
	return nil
}

// login gets a token from the server's token endpoint (base is the FHIR
// base; the token endpoint is beside it).
func login(ctx context.Context, base, username, password string) (string, error) {
	root := strings.TrimSuffix(strings.TrimSuffix(base, "/"), "/fhir")
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, root+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("token endpoint answered %d", resp.StatusCode)
	}
	if out.AccessToken == "" {
		return "", fmt.Errorf("login failed: %s", out.Error)
	}
	return out.AccessToken, nil
}

// runBenchGenerate writes the search data set (issue #4): Patients and
// Observations as NDJSON for `ward import`, and query files for
// `ward bench --mix search --paths`.
func runBenchGenerate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ward bench generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write (created)")
	o := loadgen.DatasetOptions{}
	fs.IntVar(&o.Patients, "patients", 100_000, "Patients")
	fs.IntVar(&o.Observations, "observations", 1_000_000, "Observations, spread over the Patients")
	fs.IntVar(&o.Files, "files", 8, "NDJSON files per type (import loads files in parallel)")
	fs.IntVar(&o.Queries, "queries", 2000, "paths per query file")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed (same seed, same data)")
	if err := fs.Parse(args); err != nil || *out == "" || fs.NArg() > 0 {
		return errUsage
	}
	if o.Patients <= 0 || o.Observations < 0 || o.Files <= 0 || o.Queries <= 0 {
		return errors.New("--patients, --files and --queries must be positive, --observations not negative")
	}
	start := time.Now()
	sum, err := loadgen.GenerateDataset(*out, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d Patients (%d bytes) and %d Observations (%d bytes) in %d files, and %d query files, to %s in %s\n",
		sum.Patients, sum.PatientBytes, sum.Observations, sum.ObsBytes, len(sum.Files), len(loadgen.QueryKinds), *out, time.Since(start).Round(time.Millisecond))
	return nil
}
