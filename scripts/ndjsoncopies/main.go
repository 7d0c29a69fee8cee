// Command ndjsoncopies makes a larger data set from NDJSON files (such as
// a Bulk Data export): N copies of every resource, each copy with new ids
// ("<id>-c<k>") and every relative reference rewritten to match, so the
// copies are distinct resources that load side by side. It streams: one
// line in memory at a time. Used by scripts/bulkmem.sh.
//
//	go run ./scripts/ndjsoncopies -n 10 -out DIR FILE.ndjson...
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var relRef = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$`)

func rewrite(v any, suffix string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "reference" {
				if m := relRef.FindStringSubmatch(s); m != nil {
					x[k] = m[1] + "/" + m[2] + suffix
				}
				continue
			}
			x[k] = rewrite(e, suffix)
		}
	case []any:
		for i := range x {
			x[i] = rewrite(x[i], suffix)
		}
	}
	return v
}

func main() {
	n := flag.Int("n", 10, "copies")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: ndjsoncopies -n N -out DIR FILE.ndjson...")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for k := 1; k <= *n; k++ {
		suffix := fmt.Sprintf("-c%d", k)
		for _, in := range flag.Args() {
			if err := copyFile(in, filepath.Join(*out, fmt.Sprintf("c%02d-%s", k, filepath.Base(in))), suffix); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
}

func copyFile(in, outPath, suffix string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	o, err := os.Create(outPath)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(o, 1<<20)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		if id, ok := doc["id"].(string); ok {
			doc["id"] = id + suffix
		}
		delete(doc, "meta")
		rewrite(doc, suffix)
		b, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return o.Close()
}
