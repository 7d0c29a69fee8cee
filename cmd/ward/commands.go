package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/config"
)

var errUsage = errors.New("usage")

// helpError is a help text asked for (-h, --help, ward help CMD): run
// prints it on standard output and exits 0.
type helpError struct{ text string }

func (e *helpError) Error() string { return "help requested" }

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// subUsage answers a command called without a known subcommand: its usage
// on standard output (exit 0) when help was asked for, else on standard
// error (exit 2).
func subUsage(args []string, text string, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		return &helpError{text + "\n"}
	}
	fmt.Fprintln(stderr, text)
	return errUsage
}

// flags parses a subcommand's flags over the environment's configuration.
// The configuration (environment, then flags) is validated here, before a
// command creates anything. -h prints the flags with their defaults and
// environment variables on standard output; a bad flag is one line on
// standard error and a hint.
func flags(name string, args []string, stderr io.Writer, settings []string, extra func(*flag.FlagSet)) (config.Config, *flag.FlagSet, error) {
	cfg, err := config.Load()
	if err != nil {
		return cfg, nil, err
	}
	fs := flag.NewFlagSet("ward "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	cfg.Flags(fs, settings...)
	if name == "serve" || name == "import" {
		// Bounded work: every limit of a request.
		cfg.Flags(fs, config.LimitFlags()...)
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			fmt.Fprintf(&b, "usage: ward %s [flags]\n\nflags (each setting also reads the WARD_* variable named after it):\n", name)
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return cfg, fs, &helpError{b.String()}
		}
		fmt.Fprintf(stderr, "run 'ward %s -h' for its flags\n", name)
		return cfg, fs, errUsage
	}
	return cfg, fs, nil
}

// openData opens the users, clients and tenants of the existing database
// of a command: a data directory or database that does not exist is an
// error, never a new empty one (only serve, init and migrate create).
func openData(ctx context.Context, cfg config.Config) (*app.Directory, error) {
	return app.OpenDirectory(ctx, cfg)
}

// openApp is app.Open for one-shot commands: it refuses a data directory
// without a database (instead of creating one and a key).
func openApp(ctx context.Context, cfg config.Config, stderr io.Writer) (*app.App, error) {
	if err := app.RequireDatabase(cfg); err != nil {
		return nil, err
	}
	return app.Open(ctx, cfg, app.NewLogger(io.Discard, "error"), stderr)
}

func runInit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, _, err := flags("init", args, stderr, append(dbSettings, "key-file"), nil)
	if err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg, app.NewLogger(io.Discard, "error"), stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if cfg.DatabaseURL != "" {
		fmt.Fprintln(stdout, "database ready (PostgreSQL)")
	} else {
		fmt.Fprintf(stdout, "data directory %s ready\n", cfg.DataDir)
	}
	return nil
}

var dbSettings = []string{"data-dir", "database-url"}

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, _, err := flags("serve", args, stderr,
		[]string{"addr", "data-dir", "database-url", "key-file", "base-url", "tenant", "max-body-bytes", "token-ttl", "log-level", "pprof-addr", "search-leaky-index", "search-max-count", "search-max-decided", "conditional-delete-max", "oidc-issuers", "admin-phi-access", "care-encounter-window", "registration-care-period", "export-ttl",
			"kek-provider", "pkcs11-module", "pkcs11-token", "pkcs11-key-label", "transit-addr", "transit-mount", "transit-key", "kek-cache-ttl", "kek-probe-interval", "kek-previous-files",
			"redis-url", "redis-key-prefix", "auth-rate-limit", "auth-rate-burst", "api-rate-limit", "api-rate-burst", "trusted-proxies", "nats-url", "nats-prefix", "events-nats-url", "events-nats-prefix", "events-max-attempts", "events-dispatch",
			"tls-cert", "tls-key", "tls-self-signed", "cors-origins", "allow-insecure-key-file", "max-header-bytes",
			"alert-rules", "alert-interval", "siem-syslog-addr", "siem-syslog-tls-ca", "siem-syslog-tls", "siem-http-url", "siem-http-ca", "siem-interval", "siem-batch"}, nil)
	if err != nil {
		return err
	}
	if err := cfg.CheckTLS(); err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogLevel)
	if os.Getenv("GOGC") == "" {
		// A request allocates tens of kilobytes that die young; collecting
		// less often trades memory (plentiful here) for CPU (not).
		debug.SetGCPercent(400)
	}
	if cfg.PprofAddr != "" {
		// Profiles carry no request data; still, this listener is for the
		// operator's machine only.
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			if err := http.ListenAndServe(cfg.PprofAddr, mux); err != nil {
				log.Error("pprof listener", "error", err.Error())
			}
		}()
	}
	a, err := app.Open(ctx, cfg, log, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.EnsureIndexLayout(ctx, log); err != nil {
		return err
	}
	a.StartWorkers()
	if err := a.StartLedgerWorkers(cfg, log); err != nil {
		return err
	}
	srv, err := app.NewHTTPServer(cfg, a.Handler, stderr)
	if err != nil {
		return err
	}
	// net/http's own messages (TLS handshake failures) go to the JSON log.
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	where := "SQLite in " + cfg.DataDir
	dataFlag := "--data-dir " + cfg.DataDir
	if cfg.DatabaseURL != "" {
		where, dataFlag = "PostgreSQL", "(with WARD_DATABASE_URL set)"
	}
	scheme := "http"
	if srv.TLSConfig != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "Ward %s listening on %s://%s (FHIR base %s://%s/fhir, storage: %s)\n", app.Version, scheme, ln.Addr(), scheme, ln.Addr(), where)
	if hasAdmin, err := a.TenantHasAdmin(ctx, cfg.Tenant); err != nil {
		return err
	} else if !hasAdmin {
		fmt.Fprintf(stdout, "Tenant %s has no admin yet; create one: ward users add %s --username admin --role admin --password-stdin\n", cfg.Tenant, dataFlag)
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

func runMigrate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, _, err := flags("migrate", args, stderr, dbSettings, nil)
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

func runUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "enroll-totp":
			return runEnrollTOTP(ctx, args[1:], stdout, stderr)
		case "list":
			return runUsersList(ctx, args[1:], stdout, stderr)
		case "disable", "enable", "reset-password":
			return runUsersUpdate(ctx, args[0], args[1:], stdin, stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "add" {
		return subUsage(args, `usage: ward users add --username U --role admin|privacy-officer|physician|nurse|user [--practitioner ID | --patient ID] [--clearance R,HIV,...] [--tenant T] --password-stdin [--data-dir D]
       ward users list [--data-dir D]
       ward users disable|enable --username U [--data-dir D]
       ward users reset-password --username U --password-stdin [--data-dir D]
       ward users enroll-totp --username U [--data-dir D]`, stderr)
	}
	var username, role, practitioner, patient, clearance string
	var passwordStdin bool
	cfg, _, err := flags("users add", args[1:], stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "login name")
		fs.StringVar(&role, "role", "", "admin, privacy-officer, physician, nurse or user")
		fs.StringVar(&practitioner, "practitioner", "", "id of the Practitioner a physician or nurse is")
		fs.StringVar(&patient, "patient", "", "id of the Patient a user-role account is or acts for")
		fs.StringVar(&clearance, "clearance", "", "comma-separated security label codes the user may see (R, V, HIV, PSY, ...)")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	})
	if err != nil {
		return err
	}
	if username == "" || len(username) > 128 || strings.ContainsAny(username, " \t\r\n") {
		return errors.New("--username is required: 1 to 128 characters, no spaces")
	}
	if !app.CheckRole(role) {
		return fmt.Errorf("--role must be one of %s", app.Roles)
	}
	r := role
	linkType, linkID, err := userLink(r, practitioner, patient)
	if err != nil {
		return err
	}
	if app.RoleFollowsCare(r) && practitioner == "" {
		fmt.Fprintf(stderr, "warning: a %s without --practitioner sees no patients: access follows the care relationships of a Practitioner (generalPractitioner, CareTeam, Encounter); give --practitioner ID, or add it later with a new user\n", r)
	}
	clearances, err := parseClearances(clearance)
	if err != nil {
		return err
	}
	hash, err := newPassword(stdin, username, passwordStdin)
	if err != nil {
		return err
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	id, err := dir.AddUser(ctx, app.NewUser{Tenant: cfg.Tenant, Username: username, Role: r, Practitioner: practitioner, Patient: patient,
		Clearances: clearances, PasswordHash: hash, LinkType: linkType, LinkID: linkID})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "user %s created (id %s, role %s)\n", username, id, r)
	return nil
}

// newPassword reads a new password from standard input (the only way Ward
// takes one), checks the policy and returns its hash.
func newPassword(stdin io.Reader, username string, passwordStdin bool) (string, error) {
	if !passwordStdin {
		return "", errors.New("--password-stdin is required (passwords are never taken from the command line)")
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return app.HashNewPassword(username, strings.TrimRight(line, "\r\n"))
}

func runUsersList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := flags("users list", args, stderr, append(dbSettings, "tenant"), nil)
	if err != nil {
		return err
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	users, err := dir.Users(ctx, cfg.Tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-24s %-10s %-8s %-5s %-20s %s\n", "USERNAME", "ROLE", "STATE", "TOTP", "CREATED", "ID")
	for _, u := range users {
		state := "active"
		switch {
		case u.Disabled:
			state = "disabled"
		case time.Now().Before(u.LockedUntil):
			state = "locked"
		}
		totp := "no"
		if u.TOTP {
			totp = "yes"
		}
		fmt.Fprintf(stdout, "%-24s %-10s %-8s %-5s %-20s %s\n", u.Username, u.Role, state, totp, u.Created.Format(time.RFC3339), u.ID)
	}
	return nil
}

// runUsersUpdate disables, enables or sets a new password for a user; each
// change is audited.
func runUsersUpdate(ctx context.Context, verb string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var username string
	var passwordStdin bool
	cfg, _, err := flags("users "+verb, args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "the user")
		if verb == "reset-password" {
			fs.BoolVar(&passwordStdin, "password-stdin", false, "read the new password from standard input")
		}
	})
	if err != nil {
		return err
	}
	if username == "" {
		return errors.New("--username is required")
	}
	var hash string
	if verb == "reset-password" {
		if hash, err = newPassword(stdin, username, passwordStdin); err != nil {
			return err
		}
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := dir.UpdateUser(ctx, cfg.Tenant, username, verb, hash); err != nil {
		return err
	}
	if verb != "reset-password" {
		if err := app.AnnounceSubjectsChanged(cfg, cfg.Tenant); err != nil {
			return fmt.Errorf("user %s: %s done, but the running servers were not told (they see it within 5 s): %w", username, verb, err)
		}
	}
	fmt.Fprintf(stdout, "user %s: %s done\n", username, verb)
	return nil
}

// runEnrollTOTP gives a user a TOTP secret and prints the otpauth:// URI
// once: the operator hands it to the user (as text or QR code).
func runEnrollTOTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var username string
	cfg, _, err := flags("users enroll-totp", args, stderr, append(dbSettings, "key-file", "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "the user to enroll")
	})
	if err != nil {
		return err
	}
	if username == "" {
		return errors.New("--username is required")
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	uri, err := a.Tokens.EnrollTOTP(ctx, username)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", uri)
	fmt.Fprintln(stderr, "Give this URI (or its QR code) to the user once; from now on their password login also needs the current code (form field totp).")
	return nil
}

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) ExitCode() int { return e.code }

func runAudit(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "break-glass" {
		return runAuditBreakGlass(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "governance" {
		return runAuditGovernance(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "alerts" {
		return runAuditAlerts(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "export" {
		return runAuditExport(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && auditReports[args[0]] != nil {
		return auditReports[args[0]](ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] == "list" || isHelp(args[0]) {
		// The subcommands, on standard output: asking what there is is
		// not a mistake.
		fmt.Fprint(stdout, auditCommands)
		return nil
	}
	if run := ledgerProofCommand(args[0]); run != nil {
		return run(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "ward audit: unknown subcommand %q; run 'ward audit' for the list\n", args[0])
	return errUsage
}

// auditCommands lists the audit subcommands.
const auditCommands = `usage: ward audit <subcommand> [flags]

subcommands:
` + ledgerProofCommands + `  break-glass     list emergency accesses to review: ward audit break-glass [--since D] [--data-dir D]
  governance      list changes to what governs access (care teams, consents, labels): ward audit governance [--since D] [--data-dir D]
  disclosures     the accounting of disclosures of one patient: ward audit disclosures --patient ID [--start D] [--end D] [--format fhir|html|csv]
  access          one user's activity: ward audit access --user U [--start D] [--end D] [--format fhir|html|csv]
  withhold        withhold an AuditEvent from the patient's accounting (164.528(a)(2)): ward audit withhold --event SEQ
  alerts          list the alerts the rules raised: ward audit alerts [--since D] [--data-dir D]
  export          write ledger records for a SIEM: ward audit export --since SEQ|TIME --format json|syslog [--data-dir D]

run 'ward audit <subcommand> -h' for its flags
`

// runClients registers, lists and disables clients: SMART Backend Services
// clients (public keys and system/ scopes) and public apps (redirect URIs,
// authorization code with PKCE).
func runClients(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runClientsList(ctx, args[1:], stdout, stderr)
		case "disable", "enable":
			return runClientsDisable(ctx, args[0], args[1:], stdout, stderr)
		}
	}
	if len(args) == 0 || args[0] != "add" {
		return subUsage(args, `usage: ward clients add --client-id C --jwks-file F --scope "system/Patient.rs ..." [--tenant T] [--data-dir D]
       ward clients add --client-id C --redirect-uri URI [--redirect-uri URI2] [--launch-uri URI] --scope "launch/patient openid fhirUser patient/*.rs" [--tenant T]
                        [--confidential | --secret-stdin | --jwks-file F]   (a confidential app)
       ward clients list [--tenant T] [--data-dir D]
       ward clients disable|enable --client-id C [--tenant T] [--data-dir D]`, stderr)
	}
	var id, jwksFile, scope, launchURI string
	var redirects multiFlag
	var confidential, secretStdin bool
	cfg, _, err := flags("clients add", args[1:], stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&id, "client-id", "", "the client id (the iss and sub of its assertions, or the client_id of a public app)")
		fs.StringVar(&jwksFile, "jwks-file", "", "JSON Web Key Set file with a backend client's public keys")
		fs.StringVar(&scope, "scope", "", "space-separated scopes the client may be granted")
		fs.Var(&redirects, "redirect-uri", "an app's redirect URI (repeatable; https, or http on a loopback host)")
		fs.StringVar(&launchURI, "launch-uri", "", "an app's SMART launch_uri: where an EHR launch opens it")
		fs.BoolVar(&confidential, "confidential", false, "a confidential app: generate a client secret (printed once, stored only hashed)")
		fs.BoolVar(&secretStdin, "secret-stdin", false, "a confidential app: read its client secret (32 characters or more) from standard input")
	})
	if err != nil {
		return err
	}
	if id == "" || len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
		return errors.New("--client-id is required: 1 to 128 characters, no spaces")
	}
	var jwks []byte
	secret, generated := "", false
	switch {
	case (confidential || secretStdin) && len(redirects) == 0:
		return errors.New("--confidential and --secret-stdin are for apps: give --redirect-uri")
	case confidential && secretStdin || (confidential || secretStdin) && jwksFile != "":
		return errors.New("a confidential app authenticates with one of --confidential (a generated secret), --secret-stdin or --jwks-file (keys)")
	case secretStdin:
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read client secret: %w", err)
		}
		secret = strings.TrimRight(line, "\r\n")
	case confidential:
		if secret, err = app.GenerateClientSecret(); err != nil {
			return err
		}
		generated = true
	}
	switch {
	case jwksFile != "":
		if jwks, err = os.ReadFile(jwksFile); err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
	case len(redirects) == 0:
		return errors.New("give --jwks-file (backend service) or --redirect-uri (public app)")
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	kind, err := dir.AddClient(ctx, app.NewClient{ID: id, Tenant: cfg.Tenant, JWKS: string(jwks), Scope: scope, RedirectURIs: redirects, LaunchURI: launchURI, Secret: secret})
	if err != nil {
		return cliError(err)
	}
	fmt.Fprintf(stdout, "%s %s registered in tenant %s (scopes %s)\n", kind, id, cfg.Tenant, scope)
	if generated {
		fmt.Fprintf(stdout, "client secret (shown once, stored only hashed): %s\n", secret)
	}
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cliError names the flag a validation error is about.
func cliError(err error) error {
	expr, diag, ok := app.FirstIssue(err)
	if !ok {
		return err
	}
	flagOf := map[string]string{"client_id": "--client-id", "jwks": "--jwks-file", "scope": "--scope", "redirect_uris": "--redirect-uri", "launch_uri": "--launch-uri", "client_secret": "--secret-stdin",
		"username": "--username", "role": "--role", "password": "password",
		"practitioner": "--practitioner", "patient": "--patient", "clearance": "--clearance"}
	if f, ok := flagOf[expr]; ok {
		return fmt.Errorf("%s: %s", f, diag)
	}
	return errors.New(diag)
}

func runClientsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := flags("clients list", args, stderr, append(dbSettings, "tenant"), nil)
	if err != nil {
		return err
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	cs, err := dir.Clients(ctx, cfg.Tenant)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-32s %-8s %-20s %-8s %-20s %s\n", "CLIENT", "KIND", "AUTH", "STATE", "CREATED", "SCOPE")
	for _, c := range cs {
		kind, auth, state := c.Kind, c.Auth, "active"
		if c.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(stdout, "%-32s %-8s %-20s %-8s %-20s %s\n", c.ID, kind, auth, state, c.Created.Format(time.RFC3339), c.Scope)
	}
	return nil
}

func runClientsDisable(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	var id string
	cfg, _, err := flags("clients "+verb, args, stderr, append(dbSettings, "tenant"), func(fs *flag.FlagSet) {
		fs.StringVar(&id, "client-id", "", "the client")
	})
	if err != nil {
		return err
	}
	if id == "" {
		return errors.New("--client-id is required")
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := dir.SetClientDisabled(ctx, cfg.Tenant, id, verb == "disable"); err != nil {
		return cliError(err)
	}
	if err := app.AnnounceSubjectsChanged(cfg, cfg.Tenant); err != nil {
		return fmt.Errorf("client %s: %s done, but the running servers were not told (they see it within 5 s): %w", id, verb, err)
	}
	fmt.Fprintf(stdout, "client %s: %s done\n", id, verb)
	return nil
}

// runTenants adds and lists tenants.
func runTenants(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" && args[0] != "list" {
		return subUsage(args, `usage: ward tenants add --name T [--data-dir D]
       ward tenants list [--data-dir D]`, stderr)
	}
	var name string
	cfg, _, err := flags("tenants "+args[0], args[1:], stderr, dbSettings, func(fs *flag.FlagSet) {
		if args[0] == "add" {
			fs.StringVar(&name, "name", "", "the tenant id: lower-case letters, digits and '-'")
		}
	})
	if err != nil {
		return err
	}
	dir, err := openData(ctx, cfg)
	if err != nil {
		return err
	}
	defer dir.Close()
	if args[0] == "add" {
		if err := dir.AddTenant(ctx, name); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stdout, "tenant %s created\n", name)
		return nil
	}
	ts, err := dir.Tenants(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-32s %s\n", "TENANT", "CREATED")
	for _, t := range ts {
		created := "(initial)"
		if t.Created.Unix() > 0 {
			created = t.Created.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%-32s %s\n", t.ID, created)
	}
	return nil
}

func runKeys(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "generate" {
		return runKeysGenerate(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rotate-kek" {
		return runKeysRotateKEK(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rotate-data" {
		return runKeysRotateData(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "migrate" {
		return runKeysMigrate(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rotate" {
		return subUsage(args, `usage: ward keys generate [--out FILE]   a new key-encryption key (WARD_KEY or WARD_KEY_FILE)
       ward keys rotate [--data-dir D]       a new token signing key
       ward keys rotate-kek [--new-key-file F] [--retire]
                                             re-wrap every data key under a new KEK version
       ward keys rotate-data --tenant T [--rate N] [--keep-old]
                                             a new data key for T, re-seal T's records under it
       ward keys migrate --tenant T [--rate N]
                                             move T's stored records to their patients' own keys`, stderr)
	}
	cfg, _, err := flags("keys rotate", args[1:], stderr, append(dbSettings, "key-file"), nil)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	kid, err := a.Tokens.Rotate(ctx)
	if err != nil {
		return err
	}
	msg := "running servers sign with it within a minute"
	if a.Bus != nil {
		msg = "running servers on the bus (WARD_NATS_URL) sign with it at once, others within a minute"
	}
	fmt.Fprintf(stdout, "new signing key %s; earlier keys keep verifying their tokens; %s\n", kid, msg)
	return nil
}

func runConfig(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	cfg, _, err := flags("config", args, stderr,
		[]string{"addr", "data-dir", "database-url", "key-file", "base-url", "tenant", "max-body-bytes", "token-ttl", "log-level", "oidc-issuers"}, nil)
	if err != nil {
		return err
	}
	cfg.Print(stdout)
	return nil
}

func runVersion(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fmt.Fprintln(stdout, "ward", app.Version)
	return nil
}

// userLink checks the FHIR resource a user is linked to, by the rules the
// admin API applies too (app.CheckUserLink).
func userLink(role, practitioner, patient string) (typ, id string, err error) {
	typ, id, err = app.CheckUserLink(role, practitioner, patient)
	if err != nil {
		return "", "", cliError(err)
	}
	return typ, id, nil
}

func parseClearances(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	if err := app.CheckClearances(out); err != nil {
		return nil, cliError(err)
	}
	return out, nil
}

// kekSettings are the flags naming the key-encryption key.
var kekSettings = []string{"key-file", "kek-previous-files", "kek-provider", "pkcs11-module", "pkcs11-token", "pkcs11-key-label", "transit-addr", "transit-mount", "transit-key"}

// runKeysRotateKEK re-wraps every data key under a new KEK version
// (app.RotateKEK), printing progress to stderr.
func runKeysRotateKEK(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o app.RotateKEKOptions
	cfg, _, err := flags("keys rotate-kek", args, stderr, append(append([]string{}, dbSettings...), kekSettings...), func(fs *flag.FlagSet) {
		fs.StringVar(&o.NewKeyFile, "new-key-file", "", "with a key file KEK: the new key file (created, mode 0600, if missing)")
		fs.BoolVar(&o.Retire, "retire", false, "with pkcs11 or transit: retire the old KEK versions once no key is left under them")
		fs.IntVar(&o.Batch, "batch", 2000, "keys re-wrapped per transaction")
	})
	if err != nil {
		return err
	}
	start := time.Now()
	o.Progress = func(n int) {
		fmt.Fprintf(stderr, "re-wrapped %d keys (%s)\n", n, time.Since(start).Round(time.Millisecond))
	}
	rep, err := app.RotateKEK(ctx, cfg, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "every data key is under %s: %d re-wrapped, %d already were (from %v)\n", rep.To, rep.Rewrapped, rep.Kept, rep.From)
	switch {
	case rep.Retired:
		fmt.Fprintln(stdout, "older KEK versions retired")
	case o.NewKeyFile != "":
		fmt.Fprintf(stdout, "now set WARD_KEY_FILE=%s on every node and restart them; then destroy the old key file\n", o.NewKeyFile)
	default:
		fmt.Fprintln(stdout, "no key is left under an older KEK version: run again with --retire to retire them")
	}
	return nil
}

// runKeysRotateData starts a new data-key version for a tenant and runs
// (or resumes) the re-seal job, printing progress to stderr.
func runKeysRotateData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o app.RotateDataOptions
	cfg, _, err := flags("keys rotate-data", args, stderr, append(append([]string{"kek-probe-interval"}, dbSettings...), kekSettings...), func(fs *flag.FlagSet) {
		fs.StringVar(&o.Tenant, "tenant", "", "the tenant whose data key to rotate")
		fs.Float64Var(&o.Rate, "rate", 2000, "most versions re-sealed per second (0: no limit)")
		fs.IntVar(&o.Batch, "batch", 500, "versions re-sealed per transaction")
		fs.BoolVar(&o.KeepOld, "keep-old", false, "keep the old data-key versions instead of destroying them at the end")
	})
	if err != nil {
		return err
	}
	start := time.Now()
	o.Progress = func(n int64) {
		fmt.Fprintf(stderr, "re-sealed %d versions (%s)\n", n, time.Since(start).Round(time.Millisecond))
	}
	rep, err := app.RotateData(ctx, cfg, o)
	if err != nil {
		return err
	}
	resumed := ""
	if rep.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(stdout, "tenant %s: new writes are sealed under %s; %d versions re-sealed%s\n", o.Tenant, rep.To, rep.Resealed, resumed)
	switch {
	case rep.Destroyed:
		fmt.Fprintf(stdout, "destroyed %v\n", rep.From)
	case !o.KeepOld:
		fmt.Fprintf(stdout, "kept %v: the tenant's Binary content is sealed under keys derived from them\n", rep.From)
	}
	return nil
}

// runKeysMigrate runs (or resumes) the move of a tenant's stored versions
// to per-patient keys, printing progress to stderr.
func runKeysMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o app.MigrateOptions
	cfg, _, err := flags("keys migrate", args, stderr, append(append([]string{}, dbSettings...), kekSettings...), func(fs *flag.FlagSet) {
		fs.StringVar(&o.Tenant, "tenant", "", "the tenant whose records to move")
		fs.Float64Var(&o.Rate, "rate", 2000, "most versions moved per second (0: no limit)")
		fs.IntVar(&o.Batch, "batch", 500, "versions read per transaction")
	})
	if err != nil {
		return err
	}
	start := time.Now()
	o.Progress = func(n int64) {
		fmt.Fprintf(stderr, "moved %d versions (%s)\n", n, time.Since(start).Round(time.Millisecond))
	}
	rep, err := app.MigratePatientKeys(ctx, cfg, o)
	if err != nil {
		return err
	}
	resumed := ""
	if rep.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(stdout, "tenant %s: %d of %d versions moved to their patients' keys%s\n", o.Tenant, rep.Moved, rep.Seen, resumed)
	return nil
}

// runKeysGenerate prints (or writes, 0600) a new random key-encryption
// key: the value of WARD_KEY or the content of WARD_KEY_FILE. Nothing else
// is touched; the key is not stored anywhere by Ward.
func runKeysGenerate(args []string, stdout, stderr io.Writer) error {
	var out string
	fs := flag.NewFlagSet("ward keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	fs.StringVar(&out, "out", "", "write the key to this new file (mode 0600) instead of standard output")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString("usage: ward keys generate [--out FILE]\n\nPrints a new random key-encryption key (32 bytes, base64) for WARD_KEY,\nor writes it to FILE for WARD_KEY_FILE. Keep it apart from the database\nand its backups: whoever has both reads every record.\n\nflags:\n")
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return &helpError{b.String()}
		}
		fmt.Fprintln(stderr, "run 'ward keys generate -h' for its flags")
		return errUsage
	}
	if out != "" {
		if err := app.GenerateKEKFile(out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "key-encryption key written to %s (mode 0600); set WARD_KEY_FILE=%s\n", out, out)
		return nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(k))
	return nil
}
