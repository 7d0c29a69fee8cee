package app_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob/blobtest"
	"github.com/wardhealth/ward/internal/config"
)

// killConfig is the configuration parent and child share: a data
// directory and, for s3, a bucket named in the environment.
func killConfig(dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dir
	if b := os.Getenv("WARD_KILL_BUCKET"); b != "" {
		cfg.Documents.Backend, cfg.Documents.S3Bucket, cfg.Documents.S3PathStyle = "s3", b, true
		cfg.Documents.S3Endpoint = os.Getenv("WARD_KILL_ENDPOINT")
		cfg.Documents.S3AccessKey, cfg.Documents.S3SecretKey = os.Getenv("WARD_KILL_ACCESS"), os.Getenv("WARD_KILL_SECRET")
	}
	return cfg
}

// TestKillChild is the child of TestKillMidUpload: a Ward serving on a
// real listener until it is killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv("WARD_KILL_CHILD")
	if dir == "" {
		t.Skip("run by TestKillMidUpload")
	}
	a, err := app.Open(context.Background(), killConfig(dir), slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	apptest.AddUser(t, a.Store, "default", "killer", authz.RoleAdmin)
	srv := httptest.NewServer(a.Handler)
	os.WriteFile(filepath.Join(dir, "url.tmp"), []byte(srv.URL), 0o600)
	os.Rename(filepath.Join(dir, "url.tmp"), filepath.Join(dir, "url"))
	select {} // until killed
}

// TestKillMidUpload: kill -9 of the server in the middle of an upload
// leaves no visible half-document and, after the sweep, nothing behind.
func TestKillMidUpload(t *testing.T) {
	for _, backend := range []string{"file", "s3"} {
		t.Run(backend, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ward-data")
			os.MkdirAll(dir, 0o700)
			env := append(os.Environ(), "WARD_KILL_CHILD="+dir)
			var leftovers func() int
			if backend == "s3" {
				bc := blobtest.S3(t)
				leftovers = func() int { return blobtest.Uploads(t, bc) }
				env = append(env, "WARD_KILL_BUCKET="+bc.Bucket, "WARD_KILL_ENDPOINT="+bc.Endpoint, "WARD_KILL_ACCESS="+bc.AccessKey, "WARD_KILL_SECRET="+bc.SecretKey)
				for _, kv := range env[len(env)-4:] {
					k, v, _ := strings.Cut(kv, "=")
					t.Setenv(k, v)
				}
				t.Cleanup(func() {
					if n := blobtest.Uploads(t, bc); n != 0 {
						t.Errorf("%d multipart uploads left after the sweep", n)
					}
					if keys := blobtest.ContentKeys(t, bc); len(keys) != 0 {
						t.Errorf("objects left after the sweep: %v", keys)
					}
				})
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
			cmd.Env = env
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var base string
			for i := 0; i < 2400 && base == ""; i++ { // up to 2 minutes: slow under -race on a busy machine
				b, _ := os.ReadFile(filepath.Join(dir, "url"))
				base = string(b)
				time.Sleep(50 * time.Millisecond)
			}
			if base == "" {
				t.Fatal("the child did not start")
			}
			token := login(t, base, "killer")
			// Stream an upload, and kill the server when 24 MiB are in.
			pr, pw := io.Pipe()
			go func() {
				chunk := fakePDF(1 << 20)
				for i := 0; i < 64; i++ {
					if _, err := pw.Write(chunk); err != nil {
						return
					}
					if i == 24 {
						time.Sleep(300 * time.Millisecond)
						cmd.Process.Signal(os.Kill)
					}
				}
				pw.Close()
			}()
			req, _ := http.NewRequest("POST", base+"/fhir/Binary", pr)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/pdf")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("the upload finished (%d) although the server was killed", resp.StatusCode)
			}
			cmd.Wait()
			pr.Close()

			// Restart on the same data; sweep; look.
			a, err := app.Open(context.Background(), killConfig(dir), slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if backend == "file" {
				leftovers = func() int { return contentFiles(dir) }
			}
			if leftovers() == 0 {
				t.Fatal("the killed upload left nothing behind: the kill came too late to test anything")
			}
			if _, err := a.Records.SweepContent(context.Background(), -time.Second); err != nil {
				t.Fatal(err)
			}
			if backend == "file" {
				if n := contentFiles(dir); n != 0 {
					t.Fatalf("%d files left after the sweep", n)
				}
			}
			srv := httptest.NewServer(a.Handler)
			defer srv.Close()
			tok := login(t, srv.URL, "killer")
			req, _ = http.NewRequest("GET", srv.URL+"/fhir/Binary/_history", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || strings.Contains(string(b), `"entry"`) {
				t.Fatalf("a Binary is visible after the kill: %d %.300s", resp.StatusCode, b)
			}
		})
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

func login(t *testing.T, base, user string) string {
	t.Helper()
	resp, err := http.PostForm(base+"/oauth2/token", map[string][]string{"grant_type": {"password"}, "username": {user}, "password": {apptest.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var body strings.Builder
	for sc.Scan() {
		body.WriteString(sc.Text())
	}
	s := body.String()
	i := strings.Index(s, `"access_token":"`)
	if i < 0 {
		t.Fatalf("login: %d %s", resp.StatusCode, s)
	}
	s = s[i+len(`"access_token":"`):]
	return s[:strings.IndexByte(s, '"')]
}

// TestSweep: an object no committed version names (a crash between the
// object and the commit) is removed; committed content is kept.
func TestSweep(t *testing.T) {
	docWards(t, func(t *testing.T, w *docWard) {
		kept := w.upload(t, authz.RoleAdmin, "application/pdf", fakePDF(5000))
		keptKey := w.objectOf(t, kept)
		stray := "b/" + hexOf(w.Config.Tenant) + "/never-committed/1-0123456789abcdef"
		w.putObject(stray, []byte("sealed bytes of an upload whose commit never happened"))
		if _, err := w.App.Records.SweepContent(context.Background(), -time.Second); err != nil {
			t.Fatal(err)
		}
		keys := w.objects()
		if len(keys) != 1 || keys[0] != keptKey {
			t.Fatalf("after the sweep: %v, want only %s", keys, keptKey)
		}
		if r := w.Do(t, "GET", "/fhir/Binary/"+kept, w.Tokens[authz.RoleAdmin], nil, "Accept: application/pdf"); r.Status != 200 {
			t.Fatalf("committed content after the sweep: %d", r.Status)
		}
	})
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&15])
	}
	return b.String()
}

// contentFiles counts the files of uploads under dir's document store:
// temporary files and content objects, not the shred list (shred/...).
func contentFiles(dir string) int {
	docs := filepath.Join(dir, "documents")
	return countFiles(filepath.Join(docs, "tmp")) + countFiles(filepath.Join(docs, "objects", "b"))
}
