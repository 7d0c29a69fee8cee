package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// smartAppDir holds the SMART app of the end-to-end test: two pages and
// the unmodified fhirclient library (package.json pins it, npm ci
// installs it).
const smartAppDir = "testdata/smartapp"

// browserOrSkip finds headless Chromium and the app's fhirclient bundle;
// without them the test is skipped, unless WARD_TEST_REQUIRE_CHROMIUM is
// set (CI), where it fails.
func browserOrSkip(t *testing.T) (chromium, bundle string) {
	t.Helper()
	bundle = filepath.Join(smartAppDir, "node_modules", "fhirclient", "build", "fhir-client.js")
	var missing []string
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		missing = append(missing, "chromium (apt-get install chromium)")
	}
	if _, err := os.Stat(bundle); err != nil {
		missing = append(missing, "fhirclient (npm ci in internal/app/testdata/smartapp)")
	}
	if len(missing) > 0 {
		if os.Getenv("WARD_TEST_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("WARD_TEST_REQUIRE_CHROMIUM is set but %s is missing", strings.Join(missing, " and "))
		}
		t.Skipf("no %s", strings.Join(missing, " and "))
	}
	return chromium, bundle
}

// artefacts is where the screenshots go: $WARD_TEST_ARTIFACTS, else a
// temporary directory that is kept (its path is logged).
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WARD_TEST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ward-smart-e2e-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A real SMART app (fhirclient, unmodified) in headless Chromium: a
// standalone launch through the login page, the patient picker and the
// consent screen, after which the app reads the chosen Patient and its
// Observations; then an EHR launch of the same app with a patient and
// encounter context. Screenshots of the login, picker and consent pages
// are written as artefacts.
func TestSMARTAppInBrowser(t *testing.T) {
	chromium, bundle := browserOrSkip(t)
	shots := artefacts(t)

	// The app's own origin: its pages and the library's browser bundle.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir-client.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	for _, page := range []string{"launch.html", "index.html"} {
		body, err := os.ReadFile(filepath.Join(smartAppDir, page))
		if err != nil {
			t.Fatal(err)
		}
		// Written as is: http.ServeFile would redirect /index.html to /.
		mux.HandleFunc("GET /"+page, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(body)
		})
	}
	appSrv := httptest.NewServer(mux)
	defer appSrv.Close()

	w := apptest.Start(t, apptest.Backends[0], func(c *config.Config) { c.CORSOrigins = []string{appSrv.URL} })
	ctx := context.Background()
	if _, err := authn.AddClient(ctx, w.App.Store, authn.Actor{ID: "test", Role: "system"}, authn.NewClient{ID: "e2e-app", Tenant: "default",
		Scope: "launch launch/patient openid fhirUser patient/*.rs offline_access", RedirectURIs: []string{appSrv.URL + "/index.html"},
		LaunchURI: appSrv.URL + "/launch.html"}); err != nil {
		t.Fatal(err)
	}
	pid := w.Create(t, authz.RolePhysician, `{"resourceType":"Patient","name":[{"family":"Quillfeather","given":["Oriel"]}],"birthDate":"1961-07-14",`+
		`"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	// Another patient in care with the same name prefix, and one outside
	// the physician's care whom the picker must not show.
	w.Create(t, authz.RolePhysician, `{"resourceType":"Patient","name":[{"family":"Quillon","given":["Abel"]}],"birthDate":"1990-01-02",`+
		`"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Quillby","given":["Stranger"]}],"birthDate":"1961-07-14"}`)
	var obs []string
	for _, code := range []string{"8867-4", "8310-5"} {
		obs = append(obs, w.Create(t, authz.RolePhysician, fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":%q}]},"subject":{"reference":"Patient/%s"}}`, code, pid)))
	}
	slices.Sort(obs)
	enc := w.Create(t, authz.RolePhysician, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+pid+`"}}`)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(900, 760),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true), chromedp.Flag("js-flags", "--max-old-space-size=96"))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	defer cancel()
	began := time.Now()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				return err
			}
			p := filepath.Join(shots, name)
			t.Logf("screenshot: %s", p)
			return os.WriteFile(p, png, 0o644)
		})
	}
	text := func(dst *string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) (err error) {
			*dst, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
			return err
		})
	}
	login := chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), "physician-user"),
		chromedp.SendKeys(chromedp.ID("password"), apptest.Password),
	)
	var pickerText, consentText string

	// Standalone launch: login, picker, consent, the app.
	if err := chromedp.Do(bctx,
		chromedp.Navigate(appSrv.URL+"/launch.html?iss="+w.URL),
		login, shot("smart-login.png"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("search")),
		chromedp.SendKeys(chromedp.ID("name"), "Quill"),
		chromedp.Click(chromedp.ID("search")),
		chromedp.WaitVisible(chromedp.ID("choose")),
		text(&pickerText),
		shot("smart-picker.png"),
		chromedp.Click(chromedp.CSS(`input[value="`+pid+`"]`)),
		chromedp.Click(chromedp.ID("choose")),
		chromedp.WaitVisible(chromedp.ID("allow")),
		text(&consentText),
		shot("smart-consent.png"),
		chromedp.Click(chromedp.ID("allow")),
	); err != nil {
		t.Fatalf("standalone launch: %v", err)
	}
	if !strings.Contains(pickerText, "Quillfeather") || !strings.Contains(pickerText, "Quillon") || strings.Contains(pickerText, "Quillby") {
		t.Errorf("picker shows the wrong patients: %q", pickerText)
	}
	for _, want := range []string{"e2e-app", "Oriel Quillfeather", "Read and search observation records of the chosen patient", "Open with one patient"} {
		if !strings.Contains(consentText, want) {
			t.Errorf("consent page lacks %q: %q", want, consentText)
		}
	}
	got := appResult(t, bctx)
	t.Logf("standalone launch done after %v", time.Since(began))
	if got.Patient != pid || got.Family != "Quillfeather" || !slices.Equal(got.Observations, obs) || got.NeedPatientBanner == nil || !*got.NeedPatientBanner ||
		!strings.HasSuffix(got.FHIRUser, "Practitioner/pract-physician") {
		t.Fatalf("standalone app read %+v; want patient %s, observations %v, banner, fhirUser", got, pid, obs)
	}

	// EHR launch: Ward (the physician's session) creates the launch, the
	// browser opens the app's launch_uri with iss and launch.
	r := w.Do(t, "POST", "/oauth2/launch", w.Tokens[authz.RolePhysician], []byte(`{"client_id":"e2e-app","patient":"`+pid+`","encounter":"`+enc+`"}`))
	var launch struct {
		URL string `json:"launch_url"`
	}
	if r.Status != 201 || json.Unmarshal(r.Body, &launch) != nil || !strings.HasPrefix(launch.URL, appSrv.URL+"/launch.html?") {
		t.Fatalf("create launch: %d %s", r.Status, r.Body)
	}
	var consentAgain string
	if err := chromedp.Do(bctx,
		chromedp.Navigate(launch.URL),
		login,
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		// No picker: the launch names the patient. The scope now has
		// launch, which the remembered grant lacks: the consent screen.
		chromedp.WaitVisible(chromedp.ID("allow")),
		text(&consentAgain),
		chromedp.Click(chromedp.ID("allow")),
	); err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		body, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS("body")))
		t.Fatalf("EHR launch: %v at %s: %.500s", err, loc, body)
	}
	if !strings.Contains(consentAgain, "Open with the patient (and encounter) you launched it from") {
		t.Errorf("EHR consent page: %q", consentAgain)
	}
	got = appResult(t, bctx)
	if got.Patient != pid || got.Encounter != enc || !slices.Equal(got.Observations, obs) || got.NeedPatientBanner == nil || *got.NeedPatientBanner ||
		!strings.Contains(" "+got.Scope+" ", " launch ") {
		t.Fatalf("EHR-launched app read %+v; want patient %s, encounter %s, no banner, scope launch", got, pid, enc)
	}
}

type appOutput struct {
	Patient           string   `json:"patient"`
	Family            string   `json:"family"`
	Observations      []string `json:"observations"`
	Encounter         string   `json:"encounter"`
	NeedPatientBanner *bool    `json:"need_patient_banner"`
	Scope             string   `json:"scope"`
	FHIRUser          string   `json:"fhirUser"`
}

// appResult waits for the app page to finish and returns what it read.
func appResult(t *testing.T, ctx context.Context) appOutput {
	t.Helper()
	// The browser is still on its way (the consent form's redirect, the
	// code exchange): a query may hit a page that navigates away, so
	// poll until the app page says it is finished.
	var title string
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for title != "done" && title != "error" {
		if time.Now().After(deadline) {
			loc, lerr := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("the app did not finish; page title %q (%v) at %q (%v)", title, err, loc, lerr)
		}
		time.Sleep(200 * time.Millisecond)
		title, err = chromedp.Run(ctx, chromedp.Title())
	}
	out, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("out")))
	if err != nil {
		t.Fatal(err)
	}
	var got appOutput
	if title != "done" || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("the app failed: %s", out)
	}
	return got
}
