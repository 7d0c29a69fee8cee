package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runImport loads FHIR Bundles (.json: transaction, batch, or a single
// resource) and NDJSON files (.ndjson: one resource per line, ids kept)
// through the same path as the API: validation, access decision, sealing,
// audit. A file that fails is reported with its name (and entry or line)
// and does not stop the others.
func runImport(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var workers int
	var quiet bool
	var cpuprofile string
	cfg, fs, err := flags("import", args, stderr, append(dbSettings, "key-file", "tenant", "search-leaky-index"), func(fs *flag.FlagSet) {
		fs.IntVar(&workers, "workers", 2, "files loaded concurrently (their commits share group-commit batches)")
		fs.BoolVar(&quiet, "quiet", false, "no progress line")
		fs.StringVar(&cpuprofile, "cpuprofile", "", "write a Go CPU profile of the import to this file (go tool pprof)")
	})
	if err != nil {
		return err
	}
	files, err := importFiles(fs.Args())
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("usage: ward import [--data-dir D] FILE|DIR... (.json Bundles, .ndjson)")
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	importGC()
	if cpuprofile != "" {
		stopProfile, err := startCPUProfile(cpuprofile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	// The operator's bulk load writes labelled records too: it is cleared
	// for every label. Like any admin it needs WARD_ADMIN_PHI_ACCESS for
	// patient data, and patients' consents apply to it.
	im := a.Importer(cfg.Tenant, cfg.Limits)

	var done, failedFiles atomic.Int64
	var resources atomic.Int64
	var mu sync.Mutex
	var failures []string
	start := time.Now()
	stop := make(chan struct{})
	var progress sync.WaitGroup
	if !quiet {
		progress.Add(1)
		go func() {
			defer progress.Done()
			// On a terminal one line rewritten every second; elsewhere (a
			// log, a pipe, CI) a whole line every few seconds.
			every, head, tail := progressEvery, "", "\n"
			if isTerminal(stderr) {
				every, head, tail = time.Second, "\r", "   "
			}
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					n, el := resources.Load(), time.Since(start).Seconds()
					rate := float64(n) / el
					eta := "?"
					if d := done.Load(); d > 0 {
						eta = (time.Duration(el/float64(d)*float64(int64(len(files))-d)) * time.Second).Round(time.Second).String()
					}
					fmt.Fprintf(stderr, "%simport: %d/%d files, %d resources, %.0f resources/s, ETA %s%s", head, done.Load(), len(files), n, rate, eta, tail)
				}
			}
		}()
	}
	// Directories load one after another (in sorted order), the files of
	// one directory concurrently: a later directory may refer to what an
	// earlier one created (the Synthea layout's 00-shared, resolved by
	// conditional references from patients/).
	for _, group := range groupByDir(files) {
		jobs := make(chan string)
		var wg sync.WaitGroup
		for range max(1, workers) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for f := range jobs {
					n, err := im.File(ctx, f)
					resources.Add(int64(n))
					if err != nil {
						failedFiles.Add(1)
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: %v", f, err))
						mu.Unlock()
					}
					done.Add(1)
				}
			}()
		}
		for _, f := range group {
			select {
			case jobs <- f:
			case <-ctx.Done():
			}
		}
		close(jobs)
		wg.Wait()
	}
	close(stop)
	progress.Wait()
	el := time.Since(start)
	if !quiet && isTerminal(stderr) {
		fmt.Fprintln(stderr)
	}
	sort.Strings(failures)
	unresolved := 0
	for _, f := range failures {
		fmt.Fprintln(stderr, "FAILED", f)
		if strings.Contains(f, "conditional reference") && strings.Contains(f, "matches no resource") {
			unresolved++
		}
	}
	if unresolved > 0 {
		fmt.Fprintf(stderr, "hint: %d files refer (conditional references such as Organization?identifier=...) to resources that are not loaded.\n"+
			"  They usually come from a data set's shared files: for Synthea, hospitalInformation*.json and\n"+
			"  practitionerInformation*.json (in fhir/ or a 00-shared/ directory). Import them first, or give their\n"+
			"  directory together with the patients' (ward import loads shared files first).\n", unresolved)
	}
	fmt.Fprintf(stdout, "imported %d resources from %d of %d files in %s (%.0f resources/s); %d files failed\n",
		resources.Load(), int64(len(files))-failedFiles.Load(), len(files), el.Round(time.Millisecond), float64(resources.Load())/el.Seconds(), failedFiles.Load())
	if failedFiles.Load() > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d files failed", failedFiles.Load())}
	}
	return ctx.Err()
}

// progressEvery is how often import prints a progress line when standard
// error is not a terminal.
var progressEvery = 5 * time.Second

// groupByDir splits files (in order) into runs of the same directory and
// kind (shared or not): a run loads once the runs before it are done.
func groupByDir(files []string) [][]string {
	var out [][]string
	for i, f := range files {
		if i == 0 || filepath.Dir(f) != filepath.Dir(files[i-1]) || isShared(f) != isShared(files[i-1]) {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], f)
	}
	return out
}

// importFiles expands directories (recursively, sorted, so 00-shared loads
// before patients) into .json and .ndjson files.
func importFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".ndjson")) {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	// Shared files first: what the patients' conditional references
	// resolve against (Synthea's 00-shared/, hospitalInformation and
	// practitionerInformation Bundles). The order is otherwise kept.
	sort.SliceStable(out, func(i, j int) bool { return isShared(out[i]) && !isShared(out[j]) })
	return out, nil
}

// isShared reports whether path is a shared file of a data set: in a
// directory named 00-shared (or *shared*), or a Synthea hospital or
// practitioner information Bundle.
func isShared(path string) bool {
	base := filepath.Base(path)
	if strings.HasPrefix(base, "hospitalInformation") || strings.HasPrefix(base, "practitionerInformation") {
		return true
	}
	for _, dir := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if dir == "00-shared" || strings.Contains(dir, "shared") {
			return true
		}
	}
	return false
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// startCPUProfile writes a CPU profile to path until the returned func
// runs: how the import's time divides between parsing, validation,
// sealing and the writer (docs/benchmarks.md).
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// importGC lets the collector run less often during a bulk load unless
// the operator chose (GOGC, GOMEMLIMIT): parsed Bundles are short-lived
// garbage, and at Go's default a quarter of the import's CPU went to
// collecting them (docs/benchmarks.md). The soft limit keeps the heap
// bounded whatever the files.
func importGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(512 << 20)
	}
}
